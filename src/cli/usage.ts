/**
 * What `moat --help` and `moat COMMAND --help` print, and the usage error: one line saying what is
 * wrong and one pointing at the help of the command that was misused, never the whole manual.
 */
import { MoatError } from '../errors.js'

export const commands = ['run', 'check', 'demo', 'certs', 'audit', 'passwd', 'ban', 'sessions'] as const
export type Command = (typeof commands)[number]

interface Help {
  /** How the command is written, one form per line. */
  readonly synopsis: readonly string[]
  /** What it does, for the overview and the top of its own help. */
  readonly summary: string
  readonly options: ReadonlyArray<readonly [string, string]>
  readonly notes?: readonly string[]
}

const help: Record<Command, Help> = {
  run: {
    synopsis: ['moat --config FILE'],
    summary: 'run the proxy with the config in FILE (SIGHUP or saving the file reloads it; SIGTERM drains and stops)',
    options: [['-c, --config FILE', 'the config (docs/configuration.md; every key: policies/example.yaml)']],
  },
  check: {
    synopsis: [
      'moat check --config FILE [--no-files]',
      'moat check --config FILE --as USER:CLIENT (--publish TOPIC | --subscribe FILTER)',
      '           [--qos N] [--retain] [--listener NAME] [--from ADDRESS] [--cn CN] [--claim NAME=VALUE]... [--group NAME]...',
    ],
    summary: 'validate FILE and print every problem (exit 0 valid, 1 invalid); with --as, the decision the proxy makes for that identity and what made it (exit 0 allowed, 3 denied)',
    options: [
      ['-c, --config FILE', 'the config to check'],
      ['--no-files', 'check the config without reading the certificate, key, password, ACL and JWT key files it names (they exist elsewhere, e.g. in a container); lists them'],
      ['--as USER:CLIENT', 'the user name and client id of the client; USER empty (:CLIENT) for an anonymous one'],
      ['--publish TOPIC', 'ask about a PUBLISH to TOPIC'],
      ['--subscribe FILTER', 'ask about a SUBSCRIBE to FILTER'],
      ['--qos N', '0, 1 or 2 (default 0)'],
      ['--retain', 'the PUBLISH is retained'],
      ['--listener NAME', 'the listener it connects to (default: the first of the config)'],
      ['--from ADDRESS', 'its IP address (default 127.0.0.1)'],
      ['--cn CN', 'the common name of its client certificate'],
      ['--claim NAME=VALUE', 'a claim of its token (repeatable)'],
      ['--group NAME', 'a group it belongs to (repeatable)'],
    ],
    notes: ['Before the ACL, the topic is held to the rules the proxy applies to every packet: the protocol (no + or # in a topic name) and the virtual patches (docs/virtual-patching.md).'],
  },
  demo: {
    synopsis: ['moat demo [--port 1883] [--admin-port 9464] [--embedded]'],
    summary: 'a broker behind Moat on this machine, with a small policy, for a first look: Mosquitto when it is installed (MQTT 5.0 and 3.1.1), else an embedded broker (MQTT 3.1.1)',
    options: [
      ['--port N', "Moat's MQTT port (default 1883; 0 picks a free one)"],
      ['--admin-port N', 'the metrics endpoint (default 9464; 0 picks a free one)'],
      ['--embedded', 'use the embedded broker even when Mosquitto is installed'],
    ],
  },
  certs: {
    synopsis: ['moat certs --out DIR [--client NAME]... [--host NAME]...'],
    summary: 'make a development CA, a server certificate and client certificates in DIR with the openssl command; not for production',
    options: [
      ['--out DIR', 'where to write them'],
      ['--host NAME', 'a name of the server certificate (repeatable; default localhost 127.0.0.1 ::1)'],
      ['--client NAME', 'a client certificate to make (repeatable; default device-1)'],
    ],
  },
  audit: {
    synopsis: [
      'moat audit --config FILE [--json] [--fail-on SEVERITY]',
      'moat audit --target HOST:PORT [--tls] [--ca FILE] [--servername NAME] [--no-credentials] [--json] [--fail-on SEVERITY]',
    ],
    summary: 'review a config against MQTT security practice, or probe a broker (or Moat) you run: anonymous access, default credentials, # and $SYS, oversized packets, TLS versions (exit 4 when a finding is at or above --fail-on)',
    options: [
      ['-c, --config FILE', 'the config to review'],
      ['--target HOST:PORT', 'the broker to probe; only this address is contacted'],
      ['--tls', 'the target speaks MQTT over TLS'],
      ['--ca FILE', "the CA that signed the target's certificate"],
      ['--servername NAME', 'the TLS server name to ask for'],
      ['--no-credentials', 'do not try the default credentials: no refused login counts towards a lockout of your address'],
      ['--json', 'print the findings as JSON'],
      ['--fail-on SEVERITY', 'critical, high, medium (default), low or info'],
    ],
    notes: ['Each refused login of the probe counts towards the lockout of your address at the target; it tries few enough that two runs in a row stay under Moat\'s default lockout (docs/operations.md).'],
  },
  passwd: {
    synopsis: ['moat passwd FILE USER'],
    summary: 'add or replace USER in the password FILE (scrypt), keeping its other lines, mode and owner; the password comes from stdin, or is prompted for',
    options: [],
  },
  ban: {
    synopsis: ['moat ban add TARGET [--for 1h] [--reason TEXT]', 'moat ban remove TARGET', 'moat ban list [--json]'],
    summary: "manage bans through an instance's admin endpoint; TARGET is an address, a CIDR, user:NAME or client:ID",
    options: [
      ['--admin URL', 'the admin endpoint (default http://127.0.0.1:9464)'],
      ['--token TOKEN', 'its admin.token (or the MOAT_ADMIN_TOKEN environment variable)'],
      ['--for DURATION', 'how long the ban lasts (default: until removed)'],
      ['--reason TEXT', 'kept with the ban'],
      ['--json', 'list as JSON'],
    ],
  },
  sessions: {
    synopsis: [
      'moat sessions list [--user NAME] [--client-id ID] [--address ADDRESS|CIDR] [--limit N] [--cursor C | --all] [--local] [--json]',
      'moat sessions kick CLIENT_ID [--local] [--json]',
    ],
    summary: "list the connected clients, or kick one (5.0: DISCONNECT 0x98; 3.1.1: closed), through an instance's admin endpoint; with cluster.redis, across every instance of the fleet (exit 3 when one did not answer)",
    options: [
      ['--admin URL', 'the admin endpoint (default http://127.0.0.1:9464)'],
      ['--token TOKEN', 'its admin.token (or the MOAT_ADMIN_TOKEN environment variable)'],
      ['--user NAME', 'only the sessions of this user name'],
      ['--client-id ID', 'only the sessions of this client id'],
      ['--address ADDRESS', 'only the sessions from this address, or CIDR'],
      ['--limit N', 'sessions per page (default 100, at most 1000)'],
      ['--cursor C', 'the page after the one that printed C'],
      ['--all', 'every page'],
      ['--local', 'the sessions of that instance only, not of the whole fleet'],
      ['--json', 'the answers as JSON, one object per page'],
    ],
    notes: ['Columns: client id, user, address:port, protocol, state, connected since, instance. A kicked client may connect again: `moat ban` keeps it out.'],
  },
}

const DOCS = 'Docs: README.md and docs/ (a file per topic); config reference: policies/example.yaml; error codes: docs/errors.md'

/** The name a user types: `moat` for the proxy itself, `moat check` for a command. */
export function commandName(command: Command): string {
  return command === 'run' ? 'moat' : `moat ${command}`
}

/** Lines wrapped at about 100 columns, each indented by `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > 100) {
      lines.push(indent + line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  if (line !== '') lines.push(indent + line)
  return lines
}

/** `moat --help`: every command, how it is written and what it does. */
export function overview(): string {
  const lines = ['Usage:']
  for (const command of commands) {
    lines.push(...help[command].synopsis.map((s) => `  ${s}`))
    lines.push(...wrap(help[command].summary, '        '))
  }
  lines.push('  moat --help | --version', '', "'moat COMMAND --help' prints the options of one command.", DOCS)
  return lines.join('\n')
}

/** `moat COMMAND --help`. */
export function commandHelp(command: Command): string {
  const h = help[command]
  const lines = ['Usage:', ...h.synopsis.map((s) => `  ${s}`), '', ...wrap(h.summary, '')]
  if (h.options.length > 0) {
    const width = Math.max(...h.options.map(([name]) => name.length)) + 2
    lines.push('', 'Options:')
    for (const [name, text] of h.options) {
      const [first, ...rest] = wrap(text, ' '.repeat(width + 2))
      lines.push(`  ${name.padEnd(width)}${first!.trimStart()}`, ...rest)
    }
  }
  for (const note of h.notes ?? []) lines.push('', ...wrap(note, ''))
  lines.push('', DOCS)
  return lines.join('\n')
}

/** A command line Moat cannot run: what is wrong, for which command (whose help the hint names). */
export class UsageError extends MoatError {
  constructor(readonly command: Command | null, message: string) {
    super('MOAT_ERR_USAGE', message)
  }

  /** The hint printed under the message. */
  get hint(): string {
    return this.command === null || this.command === 'run' ? "run 'moat --help' for the commands" : `run '${commandName(this.command)} --help' for its usage`
  }
}
