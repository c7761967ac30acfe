/**
 * The config schema (zod). Objects are strict: an unknown key is an error. Values in human units
 * are parsed here (config/units.ts), so what comes out has bytes and milliseconds.
 */
import { z } from 'zod'
import { authSchema } from './auth-schema.js'
import { parseDuration, parseSize } from './units.js'

/** Sections of DESIGN.md this version cannot enforce yet: refused, never silently ignored. */
export const unsupportedSections: Record<string, string> = {
  acl: 'topic allow-lists',
  cluster: 'shared state',
}

function unit<T>(parse: (v: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    try {
      return parse(value)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  })
}

const size = unit(parseSize)
const duration = unit(parseDuration)

const host = z.string({ error: 'expected a host name or IP address' }).min(1, { error: 'must not be empty' })
const port = z.number({ error: 'expected a port number' }).int({ error: 'expected a whole number' })
  .min(0, { error: 'a port is 0 to 65535' }).max(65535, { error: 'a port is 0 to 65535' })

const listener = z.strictObject({
  name: z.string({ error: 'expected a name' }).regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'a listener name is 1-64 letters, digits, _ . -' }),
  protocol: z.string({ error: "expected 'mqtt'" }).superRefine((value, ctx) => {
    if (value === 'mqtt') return
    const known = ['mqtts', 'ws', 'wss'].includes(value)
    ctx.addIssue({
      code: 'custom',
      message: known
        ? `protocol '${value}' is not supported by this version of moat yet (only 'mqtt')`
        : `unknown protocol '${value}' (only 'mqtt')`,
    })
  }),
  host: host.default('0.0.0.0'),
  port,
})

export const configSchema = z.strictObject({
  listeners: z.array(listener, { error: 'expected a list of listeners' }).min(1, { error: 'at least one listener is required' })
    .superRefine((listeners, ctx) => {
      const names = new Set<string>()
      const addresses = new Set<string>()
      listeners.forEach((l, i) => {
        if (names.has(l.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate listener name '${l.name}'` })
        names.add(l.name)
        const address = `${l.host}:${l.port}`
        if (l.port !== 0 && addresses.has(address)) ctx.addIssue({ code: 'custom', path: [i, 'port'], message: `another listener already uses ${address}` })
        addresses.add(address)
      })
    }),
  upstream: z.strictObject({
    host,
    port: port.min(1, { error: 'the broker port is 1 to 65535' }),
    connectTimeout: duration.default(5_000),
  }, { error: 'expected the broker address: { host, port }' }),
  admin: z.strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(9464),
  }).optional(),
  limits: z.strictObject({
    maxPacketSize: size.default(256 * 1024).refine((v) => v >= 64, { error: 'must be at least 64B' }),
    connectTimeout: duration.default(10_000).refine((v) => v > 0, { error: 'must be above zero' }),
  }).default({ maxPacketSize: 256 * 1024, connectTimeout: 10_000 }),
  shutdown: z.strictObject({
    gracePeriod: duration.default(10_000),
  }).default({ gracePeriod: 10_000 }),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  }).default({ level: 'info' }),
  auth: authSchema.optional(),
}, { error: 'the config must be a mapping with at least `listeners` and `upstream`' })

export type ConfigInput = z.input<typeof configSchema>
export type ConfigOutput = z.output<typeof configSchema>
