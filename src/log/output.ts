/**
 * Where the log goes (`log.file`, or standard output) and how it reads (`log.format`): JSON lines
 * for machines, or one readable line per event for people. A log file is opened for appending, so
 * the workers of `workers: N`, each with its own descriptor, can share it: on a local file system
 * the kernel places every write at the end, and a line is one write. `reopen()` opens the path
 * again after logrotate moved the file away.
 */
import { closeSync, openSync } from 'node:fs'
import { pino } from 'pino'
import type { LogConfig } from '../config/types.js'
import { ConfigError } from '../errors.js'
import { loggerOptions, type Logger } from './logger.js'

export interface LogOutput {
  readonly logger: Logger
  /** Opens `log.file` again at its path; false (nothing done) when the log goes to standard output. */
  reopen(): boolean
  /** Writes `text` as it is, in order with the log lines (the demo's banner). */
  print(text: string): void
}

type Destination = ReturnType<typeof pino.destination>

/** `log.format: pretty` (and the demo's log): pino-pretty loads only for a process that uses it. */
async function prettyPrinter(colorize: boolean): Promise<(line: string) => string> {
  const { prettyFactory } = await import('pino-pretty')
  // No error-like keys: an error's stack stays inside the one line, as escaped JSON.
  return prettyFactory({ colorize, singleLine: true, errorLikeObjectKeys: [], ignore: 'pid,hostname,service', translateTime: 'SYS:standard' })
}

/**
 * The logger `config` asks for. `configFile` names the config in the error thrown when the log
 * file cannot be opened (a missing directory, no permission): found at start, not at the first line.
 */
export async function openLog(config: LogConfig, configFile = ''): Promise<LogOutput> {
  const file = config.file
  if (file !== null) {
    try {
      closeSync(openSync(file, 'a'))
    } catch (err) {
      throw new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file: configFile, path: 'log.file', message: `cannot open ${file} for appending: ${(err as Error).message}` }])
    }
  }
  const destination = file === null ? pino.destination({ dest: 1 }) : pino.destination({ dest: file, append: true })
  if (file !== null) destination.on('error', logFileFailed(destination, file))
  const options = loggerOptions(config.level)
  if (config.format === 'json') return { logger: pino(options, destination), reopen: reopener(destination, file), print: printer(destination) }
  const pretty = await prettyPrinter(file === null && process.stdout.isTTY)
  const stream = {
    write: (line: string): boolean => destination.write(pretty(line)),
    flush: (done: (err?: Error) => void): void => destination.flush(done),
  }
  return { logger: pino(options, stream), reopen: reopener(destination, file), print: printer(destination) }
}

/** Text written into the log's own stream lands after every line logged before it. */
function printer(destination: Destination): (text: string) => void {
  return (text) => void destination.write(text)
}

function reopener(destination: Destination, file: string | null): () => boolean {
  return () => {
    if (file === null) return false
    destination.reopen()
    return true
  }
}

/**
 * A write or reopen that fails must not stop a proxy over its log: a failed reopen leaves the
 * stream on the descriptor it had (the moved file), so say so on stderr and go on. That reopen's
 * 'ready' listener would close the descriptor in use at the next successful reopen: it goes.
 */
function logFileFailed(destination: Destination, file: string): (err: Error) => void {
  let last: Error | null = null
  return (err) => {
    if (err === last) return // pino's own listener emits it once more
    last = err
    destination.removeAllListeners('ready')
    process.stderr.write(`moat: log file ${file}: ${err.message} (after a failed reopen, lines go on to the file open before)\n`)
  }
}
