/**
 * The command line read into what each command needs. Each command has its own options: one that
 * belongs to another command is unknown here, and every problem is a UsageError in our words
 * (util.parseArgs only cuts the line into tokens; its own messages never reach the user).
 */
import net from 'node:net'
import { parseArgs } from 'node:util'
import { severities, type Severity } from '../audit/finding.js'
import { checkBanArgs, type BanCommand } from './ban-command.js'
import { checkSessionsArgs, type SessionsCommand } from './sessions-command.js'
import { commandName, commands, UsageError, type Command } from './usage.js'

export interface AclQuestion {
  readonly username: string | null
  readonly clientId: string
  /** null: the first listener of the config. */
  readonly listener: string | null
  readonly address: string
  readonly certCn: string | null
  readonly claims: Readonly<Record<string, string>>
  readonly groups: readonly string[]
  readonly action: 'publish' | 'subscribe'
  readonly topic: string
  readonly qos: number
  readonly retain: boolean
}

export interface AuditArgs {
  readonly config: string | null
  readonly target: { readonly host: string; readonly port: number } | null
  readonly json: boolean
  readonly failOn: Severity
  readonly tls: boolean
  readonly ca: string | null
  readonly servername: string | null
  readonly credentials: boolean
}

export type Args =
  | { readonly command: 'help'; readonly of: Command | null }
  | { readonly command: 'version' }
  | { readonly command: 'run'; readonly config: string }
  | { readonly command: 'check'; readonly config: string; readonly files: boolean; readonly question: AclQuestion | null }
  | { readonly command: 'demo'; readonly port: number; readonly adminPort: number; readonly embedded: boolean }
  | { readonly command: 'certs'; readonly out: string; readonly clients: string[] | undefined; readonly hosts: string[] | undefined }
  | { readonly command: 'audit'; readonly audit: AuditArgs }
  | { readonly command: 'passwd'; readonly file: string; readonly user: string }
  | { readonly command: 'ban'; readonly ban: BanCommand }
  | { readonly command: 'sessions'; readonly sessions: SessionsCommand }

interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
  readonly multiple?: boolean
}

const text: OptionSpec = { type: 'string' }
const flag: OptionSpec = { type: 'boolean' }
const list: OptionSpec = { type: 'string', multiple: true }
const config: OptionSpec = { type: 'string', short: 'c' }

const specs: Record<Command, Record<string, OptionSpec>> = {
  run: { config, version: { type: 'boolean', short: 'v' } },
  check: { config, 'no-files': flag, as: text, publish: text, subscribe: text, qos: text, retain: flag, listener: text, from: text, cn: text, claim: list, group: list },
  demo: { port: text, 'admin-port': text, embedded: flag },
  certs: { out: text, client: list, host: list },
  audit: { config, target: text, tls: flag, ca: text, servername: text, 'no-credentials': flag, json: flag, 'fail-on': text },
  passwd: {},
  ban: { admin: text, token: text, for: text, reason: text, json: flag },
  sessions: { admin: text, token: text, user: text, 'client-id': text, address: text, limit: text, cursor: text, all: flag, local: flag, json: flag },
}
const HELP: OptionSpec = { type: 'boolean', short: 'h' }

type Values = Record<string, string | boolean | string[] | undefined>

/** A value that is itself an option (`--config --json`): the value was forgotten. */
function looksLikeOption(value: string): boolean {
  return value.startsWith('--') || /^-[A-Za-z]$/.test(value)
}

function read(command: Command, argv: string[]): { values: Values; positionals: string[]; help: boolean } {
  const spec: Record<string, OptionSpec> = { ...specs[command], help: HELP }
  const { tokens } = parseArgs({ args: argv, options: spec, strict: false, allowPositionals: true, tokens: true })
  const values: Values = {}
  const positionals: string[] = []
  // Help asked for: whatever else the line holds, the user wants to read how to write it.
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { values, positionals, help: true }
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue
    if (t.kind === 'positional') {
      positionals.push(t.value)
      continue
    }
    const option = spec[t.name]
    if (option === undefined) throw new UsageError(command, `unknown option '${t.rawName}' for '${commandName(command)}'`)
    if (option.type === 'boolean') {
      if (t.inlineValue === true) throw new UsageError(command, `option '${t.rawName}' takes no value`)
      values[t.name] = true
    } else {
      if (t.value === undefined || (t.inlineValue !== true && looksLikeOption(t.value))) throw new UsageError(command, `option '${t.rawName}' needs a value`)
      values[t.name] = option.multiple === true ? [...((values[t.name] as string[] | undefined) ?? []), t.value] : t.value
    }
  }
  return { values, positionals, help: false }
}

export function parse(argv: string[]): Args {
  const first = argv[0]
  let command: Command = 'run'
  if (first !== undefined && !first.startsWith('-')) {
    if (!(commands as readonly string[]).includes(first)) throw new UsageError(null, `unknown command '${first}'`)
    command = first as Command
  }
  const { values, positionals, help } = read(command, command === 'run' && first !== 'run' ? argv : argv.slice(1))
  if (help) return { command: 'help', of: command === 'run' ? null : command }
  const usage = (message: string): UsageError => new UsageError(command, message)
  const str = (name: string): string | undefined => values[name] as string | undefined
  const extra = (allowed: number): void => {
    const p = positionals[allowed]
    if (p === undefined) return
    const misplaced = (commands as readonly string[]).includes(p) ? ` (a command comes first: moat ${p} …)` : ''
    throw usage(`unexpected argument '${p}'${misplaced}`)
  }
  const needConfig = (): string => {
    const file = str('config')
    if (file === undefined) throw usage(`'${commandName(command)}' needs --config FILE`)
    return file
  }
  switch (command) {
    case 'run':
      if (values.version === true) return { command: 'version' }
      extra(0)
      if (first === undefined) throw new UsageError(null, "'moat' needs --config FILE to run the proxy, or a command")
      return { command, config: needConfig() }
    case 'check': {
      extra(0)
      return { command, config: needConfig(), files: values['no-files'] !== true, question: aclQuestion(values, usage) }
    }
    case 'demo': {
      extra(0)
      const port = portOption(str('port'), 1883, '--port', usage)
      const adminPort = portOption(str('admin-port'), 9464, '--admin-port', usage)
      if (port !== 0 && port === adminPort) throw usage(`--port and --admin-port are both ${port}: give them different ports`)
      return { command, port, adminPort, embedded: values.embedded === true }
    }
    case 'certs': {
      extra(0)
      const out = str('out')
      if (out === undefined) throw usage("'moat certs' needs --out DIR")
      return { command, out, clients: values.client as string[] | undefined, hosts: values.host as string[] | undefined }
    }
    case 'audit':
      extra(0)
      return { command, audit: auditArgs(values, usage) }
    case 'passwd':
      if (positionals.length < 2) throw usage("'moat passwd' needs FILE and USER")
      extra(2)
      return { command, file: positionals[0]!, user: positionals[1]! }
    case 'ban': {
      const action = positionals[0]
      if (action !== 'add' && action !== 'remove' && action !== 'list') throw usage("'moat ban' takes add, remove or list")
      extra(2)
      const ban: BanCommand = {
        action,
        target: positionals[1] ?? null,
        admin: str('admin') ?? 'http://127.0.0.1:9464',
        token: str('token') ?? process.env.MOAT_ADMIN_TOKEN ?? null,
        for: str('for') ?? null,
        reason: str('reason') ?? null,
        json: values.json === true,
      }
      checkBanArgs(ban, usage)
      return { command, ban }
    }
    case 'sessions': {
      const action = positionals[0]
      if (action !== 'list' && action !== 'kick') throw usage("'moat sessions' takes list or kick")
      extra(2)
      const limit = str('limit')
      const sessions: SessionsCommand = {
        action,
        clientId: positionals[1] ?? null,
        admin: str('admin') ?? 'http://127.0.0.1:9464',
        token: str('token') ?? process.env.MOAT_ADMIN_TOKEN ?? null,
        user: str('user') ?? null,
        filterClientId: str('client-id') ?? null,
        address: str('address') ?? null,
        limit: limit === undefined ? null : /^\d+$/.test(limit) ? Number(limit) : NaN,
        cursor: str('cursor') ?? null,
        all: values.all === true,
        local: values.local === true,
        json: values.json === true,
      }
      checkSessionsArgs(sessions, usage)
      return { command, sessions }
    }
  }
}

function portOption(value: string | undefined, fallback: number, name: string, usage: (message: string) => UsageError): number {
  if (value === undefined) return fallback
  const port = Number(value)
  if (!/^\d+$/.test(value) || port > 65535) throw usage(`${name} must be a port number (0-65535), got '${value}'`)
  return port
}

function auditArgs(values: Values, usage: (message: string) => UsageError): AuditArgs {
  const config = values.config as string | undefined
  const target = values.target as string | undefined
  if ((config === undefined) === (target === undefined)) throw usage("'moat audit' needs exactly one of --config FILE or --target HOST:PORT")
  const probeOnly = ['tls', 'ca', 'servername', 'no-credentials'].filter((name) => values[name] !== undefined)
  if (target === undefined && probeOnly.length > 0) throw usage(`--${probeOnly[0]} goes with --target HOST:PORT`)
  const failOn = (values['fail-on'] as string | undefined) ?? 'medium'
  if (!(severities as readonly string[]).includes(failOn)) throw usage(`--fail-on must be one of ${severities.join(', ')}, got '${failOn}'`)
  let where: AuditArgs['target'] = null
  if (target !== undefined) {
    const colon = target.lastIndexOf(':')
    const port = Number(target.slice(colon + 1))
    if (colon <= 0 || !/^\d+$/.test(target.slice(colon + 1)) || port < 1 || port > 65535) throw usage(`--target must be HOST:PORT, got '${target}'`)
    where = { host: target.slice(0, colon).replace(/^\[|\]$/g, ''), port }
  }
  return {
    config: config ?? null,
    target: where,
    json: values.json === true,
    failOn: failOn as Severity,
    tls: values.tls === true,
    ca: (values.ca as string | undefined) ?? null,
    servername: (values.servername as string | undefined) ?? null,
    credentials: values['no-credentials'] !== true,
  }
}

function aclQuestion(values: Values, usage: (message: string) => UsageError): AclQuestion | null {
  const as = values.as as string | undefined
  const publish = values.publish as string | undefined
  const subscribe = values.subscribe as string | undefined
  const identityOnly = ['qos', 'retain', 'listener', 'from', 'cn', 'claim', 'group'].filter((name) => values[name] !== undefined)
  if (as === undefined && publish === undefined && subscribe === undefined) {
    if (identityOnly.length > 0) throw usage(`--${identityOnly[0]} goes with --as USER:CLIENT and --publish or --subscribe`)
    return null
  }
  if (values['no-files'] === true) throw usage('--no-files checks a config, --as asks its ACL: give one of them')
  if (as === undefined || !as.includes(':')) throw usage('--as USER:CLIENT is required to ask the ACL (USER empty for an anonymous client)')
  if ((publish === undefined) === (subscribe === undefined)) throw usage('give exactly one of --publish TOPIC or --subscribe FILTER')
  const qos = values.qos === undefined ? 0 : Number(values.qos)
  if (!['0', '1', '2', undefined].includes(values.qos as string | undefined)) throw usage(`--qos must be 0, 1 or 2, got '${String(values.qos)}'`)
  const address = (values.from as string | undefined) ?? '127.0.0.1'
  if (net.isIP(address) === 0) throw usage(`--from must be an IP address, like 192.0.2.7 or 2001:db8::7, got '${address}'`)
  const claims: Record<string, string> = {}
  for (const c of (values.claim as string[] | undefined) ?? []) {
    const eq = c.indexOf('=')
    if (eq <= 0) throw usage(`--claim takes NAME=VALUE, got '${c}'`)
    claims[c.slice(0, eq)] = c.slice(eq + 1)
  }
  const colon = as.indexOf(':')
  return {
    username: colon === 0 ? null : as.slice(0, colon),
    clientId: as.slice(colon + 1),
    listener: (values.listener as string | undefined) ?? null,
    address,
    certCn: (values.cn as string | undefined) ?? null,
    claims,
    groups: (values.group as string[] | undefined) ?? [],
    action: publish !== undefined ? 'publish' : 'subscribe',
    topic: publish ?? subscribe!,
    qos,
    retain: values.retain === true,
  }
}
