#!/usr/bin/env -S node --no-memory-reducer
/**
 * The command line:
 *   moat --config FILE          run the proxy
 *   moat check --config FILE    validate a config and exit (0 valid, 1 invalid)
 *   moat demo [--port N]        embedded broker + proxy, for a first look
 *   moat certs --out DIR        development CA, server and client certificates (needs openssl)
 *   moat ban add|remove|list    manage bans through the admin endpoint
 */
// First: from here on SIGUSR1 cannot open Node's inspector, nor SIGUSR2 end the process.
import { onLogSignals } from './log/signals.js'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { explain, type Identity } from './acl/explain.js'
import { makeDevCerts } from './certs.js'
import { checkBanArgs, runBanCommand, type BanCommand } from './fleet/ban-command.js'
// The proxy, the demo broker, the probe and the pretty printer load only for the commands that
// use them: `moat check`, `moat ban` and `--version` start in a fraction of the time.
import { auditConfig } from './audit/config-audit.js'
import { atLeast, formatJson, formatText, severities, type Severity } from './audit/finding.js'
import { loadConfig } from './config/load.js'
import { passwdCommand } from './auth/passwd-command.js'
import { PolicyStore } from './policy/store.js'
import type { MoatConfig } from './config/types.js'
import { ConfigError, MoatError } from './errors.js'
import type { Logger } from './log/logger.js'
import { openLog, type LogOutput } from './log/output.js'
import { workerCount, workerId } from './workers/worker-count.js'

const USAGE = `Usage:
  moat --config FILE           run the proxy with the config in FILE
  moat check --config FILE     validate FILE, print every problem, exit non-zero if invalid
  moat check --config FILE --as USER:CLIENT (--publish TOPIC | --subscribe FILTER)
             [--qos N] [--retain] [--listener NAME] [--from ADDRESS] [--cn CN] [--claim NAME=VALUE]…
             [--group NAME]…
                               the ACL's decision for that identity and the rule that made it
                               (exit 0 allowed, 3 denied); USER empty (:CLIENT) = anonymous
  moat demo [--port 1883] [--admin-port 9464]
                               run an embedded broker behind moat, for a first look
  moat certs --out DIR [--client NAME]... [--host NAME]...
                               make a development CA, a server certificate (for --host names,
                               default localhost 127.0.0.1 ::1) and client certificates (default
                               device-1) in DIR, with the openssl command; not for production
  moat audit --config FILE [--json] [--fail-on SEVERITY]
                               review a config against MQTT security practice
  moat audit --target HOST:PORT [--tls] [--ca FILE] [--servername NAME] [--json] [--fail-on SEVERITY]
                               probe a broker (or Moat) you run: anonymous access, default
                               credentials, # and $SYS, oversized packets, TLS versions
                               (exit 4 when a finding is at or above --fail-on, default medium)
  moat passwd FILE USER        add or replace USER in password FILE (scrypt); the
                               password comes from stdin, or is prompted for
  moat ban add TARGET [--for 1h] [--reason TEXT]
  moat ban remove TARGET
  moat ban list [--json]       manage bans through an instance's admin endpoint (TARGET: an
                               address, a CIDR, user:NAME or client:ID); options --admin URL
                               (default http://127.0.0.1:9464), --token TOKEN or MOAT_ADMIN_TOKEN
  moat --help | --version

Docs: README.md and docs/ (a file per topic); config reference: policies/example.yaml; error codes: docs/errors.md`

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

class UsageError extends MoatError {
  constructor(message: string) {
    super('MOAT_ERR_USAGE', message)
  }
}

interface Args {
  command: string
  config?: string
  port: number
  adminPort: number
  question?: AclQuestion
  out?: string
  clients?: string[]
  hosts?: string[]
  audit?: AuditArgs
  /** Positional arguments of `moat passwd`. */
  args: string[]
  ban?: BanCommand
}

interface AuditArgs {
  target: { host: string; port: number } | null
  json: boolean
  failOn: Severity
  tls: boolean
  ca: string | null
  servername: string | null
}

interface AclQuestion {
  who: Identity
  action: 'publish' | 'subscribe'
  topic: string
  qos: number
  retain: boolean
}

function aclQuestion(values: Record<string, string | boolean | string[] | undefined>): AclQuestion | undefined {
  const as = values.as as string | undefined
  const publish = values.publish as string | undefined
  const subscribe = values.subscribe as string | undefined
  if (as === undefined && publish === undefined && subscribe === undefined) return undefined
  if (as === undefined || !as.includes(':')) throw new UsageError('--as USER:CLIENT is required to ask the ACL (USER empty for an anonymous client)')
  if ((publish === undefined) === (subscribe === undefined)) throw new UsageError('give exactly one of --publish TOPIC or --subscribe FILTER')
  const colon = as.indexOf(':')
  const qos = values.qos === undefined ? 0 : Number(values.qos)
  if (![0, 1, 2].includes(qos)) throw new UsageError(`--qos must be 0, 1 or 2, got '${String(values.qos)}'`)
  const claims: Record<string, string> = {}
  for (const c of (values.claim as string[] | undefined) ?? []) {
    const eq = c.indexOf('=')
    if (eq <= 0) throw new UsageError(`--claim takes NAME=VALUE, got '${c}'`)
    claims[c.slice(0, eq)] = c.slice(eq + 1)
  }
  return {
    who: {
      username: colon === 0 ? null : as.slice(0, colon),
      clientId: as.slice(colon + 1),
      listener: (values.listener as string | undefined) ?? 'mqtt',
      address: (values.from as string | undefined) ?? '127.0.0.1',
      certCn: (values.cn as string | undefined) ?? null,
      claims,
      groups: (values.group as string[] | undefined) ?? [],
    },
    action: publish !== undefined ? 'publish' : 'subscribe',
    topic: publish ?? subscribe!,
    qos,
    retain: values.retain === true,
  }
}

function parse(argv: string[]): Args {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        target: { type: 'string' },
        json: { type: 'boolean' },
        'fail-on': { type: 'string' },
        tls: { type: 'boolean' },
        ca: { type: 'string' },
        servername: { type: 'string' },
        port: { type: 'string' },
        'admin-port': { type: 'string' },
        as: { type: 'string' },
        publish: { type: 'string' },
        subscribe: { type: 'string' },
        qos: { type: 'string' },
        retain: { type: 'boolean' },
        listener: { type: 'string' },
        from: { type: 'string' },
        cn: { type: 'string' },
        claim: { type: 'string', multiple: true },
        group: { type: 'string', multiple: true },
        out: { type: 'string' },
        client: { type: 'string', multiple: true },
        host: { type: 'string', multiple: true },
        admin: { type: 'string' },
        token: { type: 'string' },
        for: { type: 'string' },
        reason: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help) return { command: 'help', port: 0, adminPort: 0, args: [] }
  if (values.version) return { command: 'version', port: 0, adminPort: 0, args: [] }
  const command = positionals[0] ?? 'run'
  if (!['run', 'check', 'demo', 'passwd', 'certs', 'audit', 'ban'].includes(command)) throw new UsageError(`unknown command '${command}'`)
  if (command === 'ban') {
    const action = positionals[1]
    if (action !== 'add' && action !== 'remove' && action !== 'list') throw new UsageError("'moat ban' takes add, remove or list")
    if (positionals.length > 3) throw new UsageError(`unexpected argument '${positionals[3]}'`)
    const ban: BanCommand = {
      action,
      target: positionals[2] ?? null,
      admin: values.admin ?? 'http://127.0.0.1:9464',
      token: values.token ?? process.env.MOAT_ADMIN_TOKEN ?? null,
      for: values.for ?? null,
      reason: values.reason ?? null,
      json: values.json === true,
    }
    checkBanArgs(ban, (message) => new UsageError(message))
    return { command, port: 0, adminPort: 0, args: [], ban }
  }
  if (command === 'passwd') {
    if (positionals.length !== 3) throw new UsageError("'moat passwd' needs FILE and USER")
    return { command, port: 0, adminPort: 0, args: positionals.slice(1) }
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`)
  const port = portOption(values.port, 1883, '--port')
  const adminPort = portOption(values['admin-port'], 9464, '--admin-port')
  if (command === 'audit') {
    if ((values.config === undefined) === (values.target === undefined)) throw new UsageError("'moat audit' needs exactly one of --config FILE or --target HOST:PORT")
    const failOn = values['fail-on'] ?? 'medium'
    if (!(severities as readonly string[]).includes(failOn)) throw new UsageError(`--fail-on must be one of ${severities.join(', ')}, got '${failOn}'`)
    let target: AuditArgs['target'] = null
    if (values.target !== undefined) {
      const colon = values.target.lastIndexOf(':')
      const port = Number(values.target.slice(colon + 1))
      if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--target must be HOST:PORT, got '${values.target}'`)
      target = { host: values.target.slice(0, colon).replace(/^\[|\]$/g, ''), port }
    }
    const audit: AuditArgs = { target, json: values.json === true, failOn: failOn as Severity, tls: values.tls === true, ca: values.ca ?? null, servername: values.servername ?? null }
    return { command, config: values.config, port: 0, adminPort: 0, args: [], audit }
  }
  if (command === 'certs') {
    if (values.out === undefined) throw new UsageError("'moat certs' needs --out DIR")
    return { command, port, adminPort, out: values.out, clients: values.client, hosts: values.host, args: [] }
  }
  if (command !== 'demo' && values.config === undefined) throw new UsageError(`'moat ${command === 'run' ? '' : command + ' '}' needs --config FILE`)
  const question = aclQuestion(values)
  if (question !== undefined && command !== 'check') throw new UsageError('--as/--publish/--subscribe go with `moat check`')
  return { command, config: values.config, port, adminPort, question, args: [] }
}

function portOption(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${name} must be a port number (0-65535), got '${value}'`)
  return port
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
    stop().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
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

/** `workers: N` (N > 1): this process is the cluster primary; the workers serve the clients. */
async function runCluster(file: string, config: MoatConfig, log: LogOutput): Promise<number> {
  const logger = log.logger
  new PolicyStore(config) // eslint-disable-line no-new -- an unreadable password file fails here, not N times in the workers
  const { ClusterPrimary } = await import('./workers/primary.js')
  const primary = new ClusterPrimary(file, readFileSync(file, 'utf8'), config, logger.child({ role: 'primary' }))
  warnAboutAuth(config, logger)
  await primary.start()
  void primary.finished.then((code) => logger.flush(() => process.exit(code)))
  onSignals((graceMs) => primary.stop(graceMs), logger)
  process.on('SIGHUP', () => {
    if (primary.reload()) warnAboutAuth(primary.running, logger)
  })
  onLogSignals(() => {
    primary.reopenLogs()
    return log.reopen()
  }, logger)
  primary.watchConfig(() => warnAboutAuth(primary.running, logger))
  return -1
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv)
  switch (args.command) {
    case 'help':
      process.stdout.write(USAGE + '\n')
      return 0
    case 'version':
      process.stdout.write(version() + '\n')
      return 0
    case 'check': {
      const config = loadConfig(args.config!)
      if (args.question !== undefined) {
        const q = args.question
        const d = explain(config.acl, q.who, q.action, q.topic, q.qos, q.retain)
        const who = `${q.who.username ?? '(anonymous)'}:${q.who.clientId}`
        const granted = d.downgradedTo === undefined ? '' : `, granted QoS ${d.downgradedTo}`
        const filtered = d.filteredBy === undefined ? '' : `; not delivered: the topics of ${d.filteredBy.join(', ')}`
        process.stdout.write(`${q.action} ${q.topic} as ${who}: ${d.allowed ? 'allow' : 'deny'} (${d.rule})${granted}${filtered}\n`)
        return d.allowed ? 0 : 3
      }
      new PolicyStore(config) // builds the policy too: an unreadable or malformed password file is an error
      process.stdout.write(`${args.config}: valid (${config.listeners.length} listener(s), upstream ${config.upstream.host}:${config.upstream.port})\n`)
      return 0
    }
    case 'certs': {
      const made = makeDevCerts({ out: args.out!, ...(args.clients === undefined ? {} : { clients: args.clients }), ...(args.hosts === undefined ? {} : { hosts: args.hosts }) })
      const files = [made.ca, made.server.cert, made.server.key, ...Object.values(made.clients).flatMap((c) => [c.cert, c.key]), made.crl]
      process.stdout.write(`development certificates (not for production) in ${made.dir}:\n${files.map((f) => '  ' + f).join('\n')}\n`)
      return 0
    }
    case 'audit': {
      const a = args.audit!
      const report = a.target === null
        ? auditConfig(loadConfig(args.config!), args.config!)
        : await (await import('./audit/probe.js')).probeTarget({ host: a.target.host, port: a.target.port, tls: a.tls, ca: a.ca, servername: a.servername, timeoutMs: 5000 })
      process.stdout.write(a.json ? formatJson(report) : formatText(report))
      return atLeast(report.findings, a.failOn).length > 0 ? 4 : 0
    }
    case 'passwd': {
      await passwdCommand(args.args[0]!, args.args[1]!, { input: process.stdin, output: process.stderr })
      process.stderr.write(`${args.args[0]}: wrote ${args.args[1]}\n`)
      return 0
    }
    case 'ban':
      return runBanCommand(args.ban!, process.stdout)
    case 'demo': {
      const { logger } = await openLog({ level: 'info', format: 'pretty', file: null })
      const { demoBanner, startDemo } = await import('./demo.js')
      const demo = await startDemo({ port: args.port, adminPort: args.adminPort, logger })
      process.stdout.write(demoBanner(demo) + '\n')
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
      await moat.start()
      onSignals((graceMs) => moat.shutdown(graceMs), logger)
      const reloaded = (): void => {
        warnAboutAuth(moat.config, logger)
        if (workerCount(moat.config) !== 1) logger.warn({ event: 'config_reload', workers: moat.config.workers }, '`workers` changes take effect on restart; running as one process')
      }
      process.on('SIGHUP', () => {
        if (moat.reload()) reloaded()
      })
      onLogSignals(log.reopen, logger)
      moat.watchConfig(reloaded)
      return -1
    }
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exitCode = code
}, (err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`moat: invalid config\n${err.message}\n`)
    process.exitCode = 1
  } else if (err instanceof MoatError) {
    process.stderr.write(`moat: ${err.message}${err.code === 'MOAT_ERR_USAGE' ? '\n\n' + USAGE : ''}\n`)
    process.exitCode = err.code === 'MOAT_ERR_USAGE' ? 2 : 1
  } else {
    process.stderr.write(`moat: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  }
})
