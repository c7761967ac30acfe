/**
 * The root logger (pino) with redaction: secrets never reach a log line, even if a packet object is
 * logged by mistake (STYLE H14). Sessions log through children bound to {sid, listener, remote}.
 */
import { pino, type Logger } from 'pino'
import type { LogLevel } from '../config/types.js'

export type { Logger }

export const redactPaths = [
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'token',
  '*.token',
  'packet.password',
  'passphrase',
  '*.passphrase',
  'passwordBase64',
  '*.passwordBase64',
  'secret',
  '*.secret',
]

export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: redactPaths, censor: '[redacted]' }, base: { service: 'moat' } }
  return destination === undefined ? pino(options) : pino(options, destination)
}
