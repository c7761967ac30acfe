/**
 * The `log` section of the config schema, and its compilation into LogConfig: `file` resolved
 * against the config file's directory, like every other path in the config.
 */
import { resolve } from 'node:path'
import { z } from 'zod'
import { text } from './strings.js'
import { baseDir } from './tls-schema.js'
import type { LogConfig } from './types.js'

export const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  format: z.enum(['json', 'pretty'], { error: 'expected json (one JSON object per line, for machines) or pretty (one readable line per event)' }).default('json'),
  file: text.optional(),
}).prefault({})

export function compileLog(c: z.output<typeof logSchema>, configFile: string): LogConfig {
  return { level: c.level, format: c.format, file: c.file === undefined ? null : resolve(baseDir(configFile), c.file) }
}
