/**
 * The root logger (pino) with redaction: secrets never reach a log line, even if a packet object is
 * logged by mistake. Sessions log through children bound to {sid, listener, remote}.
 *
 * Redaction is our own `formatters.log` hook, not pino's `redact` option: that one clones the
 * logged object for its wildcard paths on every line, and Moat logs a line per connection, so it
 * weighs on the cost of a CONNECT. This one looks at the keys a line has and at those of the
 * objects one level down, and copies only an object that holds a secret: the paths `key` and
 * `*.key` for each secret key.
 * A child's bindings (pino does not pass them through `formatters` past the root) are censored
 * at their top level by a serializer per secret key; Moat binds only scalars (sid, listener,
 * remote, worker).
 */
import { pino, type Logger, type LoggerOptions } from 'pino'
import type { LogLevel } from '../config/types.js'

export type { Logger }

/** Keys whose values never reach a log line, at the top of a line or one object down. */
export const SECRET_KEYS: readonly string[] = ['password', 'passwordBase64', 'authorization', 'token', 'passphrase', 'secret']

const SECRET_KEY_SET: ReadonlySet<string> = new Set(SECRET_KEYS)

export const REDACTED = '[redacted]'

/** `value` with its secret keys censored: itself when it has none, else a shallow copy. */
function censorKeys(value: object): object {
  let out: Record<string, unknown> | null = null
  for (const key of SECRET_KEYS) {
    if (!Object.hasOwn(value, key) || (value as Record<string, unknown>)[key] === undefined) continue
    out ??= { ...value }
    out[key] = REDACTED
  }
  return out ?? value
}

/**
 * A log line's fields (or a child's bindings) with every secret censored: a top-level secret key,
 * and a secret key of any plain object or class instance one level down (`packet.password`).
 * Returns `fields` itself when nothing is secret (the common case: no copy).
 */
export function redactSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null
  for (const key in fields) {
    const value = fields[key]
    if (value === undefined || value === null) continue
    let replaced: unknown = value
    if (SECRET_KEY_SET.has(key)) replaced = REDACTED
    else if (typeof value === 'object' && !Array.isArray(value) && !ArrayBuffer.isView(value)) replaced = censorKeys(value)
    if (replaced === value) continue
    out ??= { ...fields }
    out[key] = replaced
  }
  return out ?? fields
}

function censored(): string {
  return REDACTED
}

const secretSerializers = Object.fromEntries(SECRET_KEYS.map((key) => [key, censored]))

/** The second whose ISO-8601 text (up to the dot) isoTime holds, and that text. */
let isoSecond = -1
let isoPrefix = ''

/**
 * `,"time":"…"` for `now` (ms since the epoch), as pino's isoTime writes it (`toISOString`). The text
 * of the second is kept: formatting a date costs more than the rest of a line's fields together.
 */
export function isoTimeAt(now: number): string {
  const ms = now % 1000
  const second = now - ms
  if (second !== isoSecond) {
    isoSecond = second
    isoPrefix = `,"time":"${new Date(second).toISOString().slice(0, -4)}`
  }
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`
}

function isoTime(): string {
  return isoTimeAt(Date.now())
}

/** `"level":"warn"`, not pino's number: a reader of the line (or fail2ban) needs no table. */
function levelName(label: string): { level: string } {
  return { level: label }
}

/**
 * pino options every Moat logger shares: the level, level names, an ISO-8601 `time` in UTC,
 * redaction, and `service: moat` on every line.
 */
export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { service: 'moat' },
    timestamp: isoTime,
    formatters: { level: levelName, log: redactSecrets },
    serializers: secretSerializers,
  }
}

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const options = loggerOptions(level)
  return destination === undefined ? pino(options) : pino(options, destination)
}
