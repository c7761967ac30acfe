#!/usr/bin/env -S node --no-memory-reducer --max-semi-space-size=4
/**
 * The `moat` command: runs the proxy, or one of the commands (check, demo, certs, audit, passwd,
 * ban, sessions). How each is written and its help are in cli/usage.ts, the reading of the command line in
 * cli/args.ts, `moat check` in cli/check.ts; errors are printed here, each with its code.
 */
// First: from here on SIGUSR1 cannot open Node's inspector, nor SIGUSR2 end the process.
import { onLogSignals } from './log/signals.js'
import { readFileSync } from 'node:fs'
import { makeDevCerts } from './certs.js'
import { runBanCommand } from './cli/ban-command.js'
import { runSessionsCommand } from './cli/sessions-command.js'
// The proxy, the demo broker, the probe and the pretty printer load only for the commands that
// use them: `moat check`, `moat ban` and `--version` start in a fraction of the time.
import { auditConfig } from './audit/config-audit.js'
import { atLeast, formatJson, formatText } from './audit/finding.js'
import { loadConfig } from './config/load.js'
import { passwdCommand } from './auth/passwd-command.js'
import { PolicyStore } from './policy/store.js'
import type { MoatConfig } from './config/types.js'
import { ConfigError, MoatError } from './errors.js'
import { parse } from './cli/args.js'
import { runCheck } from './cli/check.js'
import { commandHelp, overview, UsageError } from './cli/usage.js'
import type { Logger } from './log/logger.js'
import { openLog, type LogOutput } from './log/output.js'
import { workerCount, workerId } from './workers/worker-count.js'

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Stop on SIGTERM/SIGINT: a first signal drains for the grace period, a second closes at once. */
function onSignals(stop: (graceMs?: number) => Promise<void>, logger: Logger): void {
  let stopping = false
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ event: 'signal', signal }, 'second signal: closing all sessions now')
      void stop(0)
      return
    }
    stopping = true
    logger.info({ event: 'signal', signal }, 'stopping')
    // The log's last lines leave the process before it exits (a lagging reader of standard output).
    stop().then(() => logger.flush(() => process.exit(0)), (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      logger.flush(() => process.exit(1))
    })
  }
  process.on('SIGTERM', handler)
  process.on('SIGINT', handler)
}

/** Anonymous clients admitted: say so loudly at every start (and the reason a config denies all). */
function warnAboutAuth(config: MoatConfig, logger: Logger): void {
  const { anonymous, backends } = config.auth
  if (anonymous) {
    logger.warn({ event: 'auth_anonymous', backends: backends.map((b) => b.type) },
      'AUTH: auth.anonymous is true: clients without credentials are let through to the broker. Set auth.anonymous: false unless that is what you want.')
  } else if (backends.length === 0 && config.auth.unknownCredentials === 'refuse') {
    logger.warn({ event: 'auth_no_backends' }, 'AUTH: no auth backends and anonymous off: every client will be refused (add auth.backends)')
  }
  if (config.auth.unknownCredentials === 'broker') {
    logger.warn({ event: 'auth_unknown_to_broker', backends: backends.map((b) => b.type) },
      'AUTH: auth.unknownCredentials is broker: credentials no backend knows go to the broker, which must authenticate them itself.')
  }
}

/**
 * Catches SIGHUP before start: without a handler a SIGHUP ends the process (the signal's default),
 * and a reload sent as soon as the `ready` line is read reaches the process before the code after
 * that line has run. A SIGHUP that comes while starting reloads once started. Returns the call
 * that says the process has started.
 */
function reloadOnSighup(reload: () => void): () => void {
  let started = false
  let pending = false
  process.on('SIGHUP', () => {
    if (started) reload()
    else pending = true
  })
  return () => {
    started = true
    if (pending) reload()
  }
}

/** `workers: N` (N > 1): this process is the cluster primary; the workers serve the clients. */
async function runCluster(file: string, config: MoatConfig, log: LogOutput): Promise<number> {
  const logger = log.logger
  new PolicyStore(config) // eslint-disable-line no-new -- an unreadable password file fails here, not N times in the workers
  const { ClusterPrimary } = await import('./workers/primary.js')
  const primary = new ClusterPrimary(file, readFileSync(file, 'utf8'), config, logger.child({ role: 'primary' }))
  warnAboutAuth(config, logger)
  const started = reloadOnSighup(() => {
    if (primary.reload()) warnAboutAuth(primary.running, logger)
  })
  onLogSignals(() => {
    primary.reopenLogs()
    return log.reopen()
  }, logger)
  await primary.start()
  void primary.finished.then((code) => logger.flush(() => process.exit(code)))
  onSignals((graceMs) => primary.stop(graceMs), logger)
  started()
  primary.watchConfig(() => warnAboutAuth(primary.running, logger))
  return -1
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv)
  switch (args.command) {
    case 'help':
      process.stdout.write((args.of === null ? overview() : commandHelp(args.of)) + '\n')
      return 0
    case 'version':
      process.stdout.write(version() + '\n')
      return 0
    case 'check':
      return runCheck(args.config, args.files, args.question, process.stdout)
    case 'certs': {
      const made = makeDevCerts({ out: args.out, ...(args.clients === undefined ? {} : { clients: args.clients }), ...(args.hosts === undefined ? {} : { hosts: args.hosts }) })
      const files = [made.ca, made.server.cert, made.server.key, ...Object.values(made.clients).flatMap((c) => [c.cert, c.key]), made.crl]
      process.stdout.write(`development certificates (not for production) in ${made.dir}:\n${files.map((f) => '  ' + f).join('\n')}\n`)
      return 0
    }
    case 'audit': {
      const a = args.audit
      let report
      if (a.target === null) {
        report = auditConfig(loadConfig(a.config!), a.config!)
      } else {
        const { probePlan, probeTarget } = await import('./audit/probe.js')
        const options = { host: a.target.host, port: a.target.port, tls: a.tls, ca: a.ca, servername: a.servername, timeoutMs: 5000, credentials: a.credentials }
        process.stderr.write(probePlan(options) + '\n')
        report = await probeTarget(options)
      }
      process.stdout.write(a.json ? formatJson(report) : formatText(report))
      return atLeast(report.findings, a.failOn).length > 0 ? 4 : 0
    }
    case 'passwd': {
      await passwdCommand(args.file, args.user, { input: process.stdin, output: process.stderr })
      process.stderr.write(`${args.file}: wrote ${args.user}\n`)
      return 0
    }
    case 'ban':
      return runBanCommand(args.ban, process.stdout)
    case 'sessions':
      return runSessionsCommand(args.sessions, process.stdout, process.stderr)
    case 'demo': {
      const { logger, print } = await openLog({ level: 'info', format: 'pretty', file: null })
      const { demoBanner, startDemo } = await import('./demo.js')
      const demo = await startDemo({ port: args.port, adminPort: args.adminPort, embedded: args.embedded, logger })
      // Through the log's own stream: what the start logged (a broker that could not start) comes before it.
      print(demoBanner(demo) + '\n')
      onSignals(() => demo.stop(), logger)
      return -1
    }
    default: {
      const worker = workerId()
      if (worker !== null) {
        const { runWorker } = await import('./workers/worker.js')
        await runWorker(worker) // a cluster worker: the primary drives it
        return -1
      }
      const config = loadConfig(args.config!)
      const log = await openLog(config.log, args.config!)
      const logger = log.logger
      if (workerCount(config) > 1) return runCluster(args.config!, config, log)
      const { Moat } = await import('./moat.js')
      const moat = new Moat(config, { logger })
      warnAboutAuth(config, logger)
      const reloaded = (): void => {
        warnAboutAuth(moat.config, logger)
        if (workerCount(moat.config) !== 1) logger.warn({ event: 'config_reload', workers: moat.config.workers }, '`workers` changes take effect on restart; running as one process')
      }
      const started = reloadOnSighup(() => {
        if (moat.reload()) reloaded()
      })
      onLogSignals(log.reopen, logger)
      await moat.start()
      onSignals((graceMs) => moat.shutdown(graceMs), logger)
      started()
      moat.watchConfig(reloaded)
      return -1
    }
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exitCode = code
}, (err: unknown) => {
  // Every error of the catalogue names its code (docs/errors.md says what to do about it).
  if (err instanceof UsageError) {
    process.stderr.write(`moat: ${err.message} [${err.code}]\n${err.hint}\n`)
    process.exitCode = 2
  } else if (err instanceof ConfigError) {
    process.stderr.write(`moat: ${err.code === 'MOAT_ERR_CONFIG_READ' ? 'cannot read the config' : 'invalid config'} [${err.code}]\n${err.message}\n`)
    process.exitCode = 1
  } else if (err instanceof MoatError) {
    process.stderr.write(`moat: ${err.message} [${err.code}]\n`)
    process.exitCode = err.code === 'MOAT_ERR_USAGE' ? 2 : 1
  } else {
    process.stderr.write(`moat: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  }
})
