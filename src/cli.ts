#!/usr/bin/env node
/**
 * The command line:
 *   moat --config FILE          run the proxy
 *   moat check --config FILE    validate a config and exit (0 valid, 1 invalid)
 *   moat demo [--port N]        embedded broker + proxy, for a first look
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import pretty from 'pino-pretty'
import { loadConfig } from './config/load.js'
import { passwdCommand } from './auth/passwd-command.js'
import { PolicyStore } from './config/policy-store.js'
import type { MoatConfig } from './config/types.js'
import { demoBanner, startDemo } from './demo.js'
import { ConfigError, MoatError } from './errors.js'
import { createLogger, redactPaths, type Logger } from './log/logger.js'
import { Moat } from './moat.js'

const USAGE = `Usage:
  moat --config FILE           run the proxy with the config in FILE
  moat check --config FILE     validate FILE, print every problem, exit non-zero if invalid
  moat demo [--port 1883] [--admin-port 9464]
                               run an embedded broker behind moat, for a first look
  moat passwd FILE USER        add or replace USER in password FILE (scrypt); the
                               password comes from stdin, or is prompted for
  moat --help | --version

Docs: README.md; config reference: policies/example.yaml; error codes: docs/errors.md`

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

class UsageError extends MoatError {
  constructor(message: string) {
    super('MOAT_ERR_USAGE', message)
  }
}

function parse(argv: string[]): { command: string; config?: string; port: number; adminPort: number; args: string[] } {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string' },
        'admin-port': { type: 'string' },
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
  if (!['run', 'check', 'demo', 'passwd'].includes(command)) throw new UsageError(`unknown command '${command}'`)
  if (command === 'passwd') {
    if (positionals.length !== 3) throw new UsageError("'moat passwd' needs FILE and USER")
    return { command, port: 0, adminPort: 0, args: positionals.slice(1) }
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`)
  const port = portOption(values.port, 1883, '--port')
  const adminPort = portOption(values['admin-port'], 9464, '--admin-port')
  if (command !== 'demo' && values.config === undefined) throw new UsageError(`'moat ${command === 'run' ? '' : command + ' '}' needs --config FILE`)
  return { command, config: values.config, port, adminPort, args: [] }
}

function portOption(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${name} must be a port number (0-65535), got '${value}'`)
  return port
}

function prettyLogger(): Logger {
  return pino({ level: 'info', redact: { paths: redactPaths, censor: '[redacted]' } },
    pretty({ colorize: process.stdout.isTTY, sync: true, singleLine: true, ignore: 'pid,hostname,service', translateTime: 'HH:MM:ss.l' }))
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
  } else if (backends.length === 0) {
    logger.warn({ event: 'auth_no_backends' }, 'AUTH: no auth backends and anonymous off: every client will be refused (add auth.backends)')
  }
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
      new PolicyStore(config) // builds the policy too: an unreadable or malformed password file is an error
      process.stdout.write(`${args.config}: valid (${config.listeners.length} listener(s), upstream ${config.upstream.host}:${config.upstream.port})\n`)
      return 0
    }
    case 'passwd': {
      await passwdCommand(args.args[0]!, args.args[1]!, { input: process.stdin, output: process.stderr })
      process.stderr.write(`${args.args[0]}: wrote ${args.args[1]}\n`)
      return 0
    }
    case 'demo': {
      const logger = prettyLogger()
      const demo = await startDemo({ port: args.port, adminPort: args.adminPort, logger })
      process.stdout.write(demoBanner(demo) + '\n')
      onSignals(() => demo.stop(), logger)
      return -1
    }
    default: {
      const config = loadConfig(args.config!)
      const logger = createLogger(config.log.level)
      const moat = new Moat(config, { logger })
      warnAboutAuth(config, logger)
      await moat.start()
      onSignals((graceMs) => moat.shutdown(graceMs), logger)
      process.on('SIGHUP', () => {
        if (moat.reload()) warnAboutAuth(moat.config, logger)
      })
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
