/**
 * The two user signals. SIGUSR1 does nothing: Node opens its inspector (a debugger, on
 * 127.0.0.1:9229) on SIGUSR1 unless the process listens for it, and a security proxy must not open
 * a debugger to whoever may signal it; a debugger is opened only by node's own --inspect flags.
 * SIGUSR2, like SIGHUP, reopens the log file, for logrotate.
 *
 * Both are caught as this module is evaluated, and cli.ts imports it first: only Node's own
 * start-up comes before, where SIGUSR1 would still open the inspector and SIGUSR2 end the process.
 */
import type { Logger } from './logger.js'

function ignore(): void {}

process.on('SIGUSR1', ignore)
process.on('SIGUSR2', ignore)

/** Reopens the log file (when there is one) and says so in the reopened file. */
export function reopenLog(reopen: () => boolean, logger: Logger, cause: string): void {
  if (reopen()) logger.info({ event: 'log_reopened', cause }, 'log file reopened')
  else logger.debug({ event: 'log_reopened', cause }, 'the log goes to standard output: nothing to reopen')
}

/** SIGUSR2 and SIGHUP reopen the log file; SIGUSR1 is logged as ignored. */
export function onLogSignals(reopen: () => boolean, logger: Logger): void {
  process.on('SIGUSR1', () => {
    logger.info({ event: 'signal', signal: 'SIGUSR1' }, 'SIGUSR1 ignored: Moat opens no debugger on a signal (start node with --inspect for one)')
  })
  const onSignal = (signal: NodeJS.Signals): void => reopenLog(reopen, logger, signal)
  process.on('SIGUSR2', onSignal)
  process.on('SIGHUP', onSignal)
}
