/**
 * The config schema (zod). Objects are strict: an unknown key is an error. Values in human units
 * are parsed here (config/units.ts), so what comes out has bytes and milliseconds.
 */
import net from 'node:net'
import { z } from 'zod'
import { checkTopicFilter } from '../protocol/validate.js'
import { DEFAULT_COALESCING } from '../net/read-coalescing.js'
import { aclSchema } from './acl-schema.js'
import { byteRate, duration, rate, size, unit } from './unit-fields.js'
import { adminTokenSchema, clusterSchema } from './cluster-schema.js'
import { authSchema } from './auth-schema.js'
import { logSchema } from './log-schema.js'
import { checkListener, listenerExtras, listenerProtocol, upstreamExtras } from './tls-schema.js'
import { parseMemorySize, parseWaitMicros, rateCredits, type Rate } from './units.js'
import { virtualPatchIds, type VirtualPatchId } from './types.js'

/** Config sections this version cannot enforce yet: refused, never silently ignored. */
export const unsupportedSections: Record<string, string> = {}

const host = z.string({ error: 'expected a host name or IP address' }).min(1, { error: 'must not be empty' })
const port = z.number({ error: 'expected a port number' }).int({ error: 'expected a whole number' })
  .min(0, { error: 'a port is 0 to 65535' }).max(65535, { error: 'a port is 0 to 65535' })

const listener = z.strictObject({
  name: z.string({ error: 'expected a name' }).regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'a listener name is 1-64 letters, digits, _ . -' }),
  protocol: listenerProtocol,
  host: host.default('0.0.0.0'),
  port,
  ...listenerExtras,
}).superRefine(checkListener)

// ---------------------------------------------------------------- limits (rates, caps, quotas)

const excess = z.enum(['throttle', 'drop', 'disconnect'], { error: 'expected throttle, drop or disconnect' })
const count = z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' })
  .min(1, { error: 'must be at least 1' })
const topicPattern = z.string({ error: 'expected a topic filter like camera/#' }).min(1, { error: 'must not be empty' })
  .refine((t) => checkTopicFilter(t) === 0, { error: 'is not a valid topic filter (# only last, + and # fill whole levels)' })

const limitsSchema = {
  maxPayload: size.optional(),
  payload: z.array(z.strictObject({ topic: topicPattern, max: size }), { error: 'expected a list of { topic, max }' }).default([]),
  messageRate: rate.optional(),
  byteRate: byteRate.optional(),
  packetRate: rate.optional(),
  burst: duration.default(100).refine((v) => v > 0, { error: 'must be above zero' }),
  onExcess: excess.default('throttle'),
  perUsername: z.strictObject({
    messageRate: rate.optional(),
    byteRate: byteRate.optional(),
    packetRate: rate.optional(),
    burst: duration.default(100).refine((v) => v > 0, { error: 'must be above zero' }),
    onExcess: excess.default('throttle'),
    trackedUsers: count.default(10_000),
  }).optional(),
  topics: z.array(z.strictObject({
    topic: topicPattern,
    rate,
    burst: duration.optional(),
    onExcess: excess.optional(),
  }), { error: 'expected a list of { topic, rate, onExcess }' }).default([]),
  connections: z.strictObject({
    rate: rate.optional(),
    perAddressRate: rate.optional(),
    perAddress: count.optional(),
    perUsername: count.optional(),
    total: count.optional(),
    trackedAddresses: count.default(10_000),
  }).prefault({}),
  maxSubscriptions: count.optional(),
  maxInflight: count.max(65_535, { error: 'at most 65535 (the MQTT Receive Maximum)' }).optional(),
  maxKeepalive: duration.refine((v) => v >= 1000 && v <= 65_535_000, { error: 'must be between 1s and 65535s' }).optional(),
  overload: z.strictObject({
    eventLoopLag: duration.refine((v) => v > 0, { error: 'must be above zero' }).optional(),
    memory: unit(parseMemorySize).refine((v) => v > 0, { error: 'must be above zero' }).optional(),
    sampleInterval: duration.default(500).refine((v) => v >= 10, { error: 'must be at least 10ms' }),
  }).prefault({}),
}

type RateKeys = { messageRate?: Rate | undefined; byteRate?: Rate | undefined; packetRate?: Rate | undefined; burst: number }

/** A rate and burst that a token bucket cannot count in exact integers is refused here, by key. */
function checkBucket(rate: Rate | undefined, burstMs: number, path: Array<string | number>, ctx: z.RefinementCtx): void {
  if (rate === undefined) return
  try {
    rateCredits(rate, burstMs)
  } catch (err) {
    ctx.addIssue({ code: 'custom', path, message: (err as Error).message })
  }
}

/** Cross-key rules: buckets that can count exactly; a payload cap above maxPacketSize could never be reached. */
function checkLimits(limits: RateKeys & {
  maxPacketSize: number
  maxPayload?: number | undefined
  payload: Array<{ max: number }>
  perUsername?: RateKeys | undefined
  topics: Array<{ rate: Rate; burst?: number | undefined }>
}, ctx: z.RefinementCtx): void {
  for (const key of ['messageRate', 'byteRate', 'packetRate'] as const) {
    checkBucket(limits[key], limits.burst, [key], ctx)
    if (limits.perUsername !== undefined) checkBucket(limits.perUsername[key], limits.perUsername.burst, ['perUsername', key], ctx)
  }
  limits.topics.forEach((t, i) => checkBucket(t.rate, t.burst ?? limits.burst, ['topics', i, 'rate'], ctx))
  const cap = limits.maxPacketSize
  if (limits.maxPayload !== undefined && limits.maxPayload > cap) {
    ctx.addIssue({ code: 'custom', path: ['maxPayload'], message: `${limits.maxPayload} bytes is above maxPacketSize (${cap}): raise maxPacketSize too` })
  }
  limits.payload.forEach((rule, i) => {
    if (rule.max > cap) ctx.addIssue({ code: 'custom', path: ['payload', i, 'max'], message: `${rule.max} bytes is above maxPacketSize (${cap}): raise maxPacketSize too` })
  })
}

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
    ...upstreamExtras,
    // Local addresses the connections to the broker come from, in turn (one address has ~28,000
    // ephemeral ports towards one broker port: more connections need more addresses).
    sourceAddresses: z.array(z.string().refine((a) => net.isIP(a) !== 0, { error: 'expected an IP address (e.g. 127.0.0.2)' }))
      .max(256, { error: 'at most 256 source addresses' }).default([]),
  }, { error: 'expected the broker address: { host, port }' }).superRefine((u, ctx) => {
    const family = net.isIP(u.host)
    u.sourceAddresses.forEach((a, i) => {
      if (family !== 0 && net.isIP(a) !== family) ctx.addIssue({ code: 'custom', path: ['sourceAddresses', i], message: `${a} is not of the same IP version as host ${u.host}` })
    })
  }),
  admin: z.strictObject({
    host: host.default('127.0.0.1'),
    port: port.default(9464),
    ...adminTokenSchema,
  }).optional(),
  limits: z.strictObject({
    maxPacketSize: size.default(256 * 1024).refine((v) => v >= 64, { error: 'must be at least 64B' }),
    connectTimeout: duration.default(10_000).refine((v) => v > 0, { error: 'must be above zero' }),
    ...limitsSchema,
  }).prefault({}).superRefine(checkLimits),
  shutdown: z.strictObject({
    gracePeriod: duration.default(10_000),
  }).default({ gracePeriod: 10_000 }),
  acl: aclSchema.optional(),
  log: logSchema,
  auth: authSchema.optional(),
  workers: z.union([
    z.literal('auto'),
    z.number({ error: "expected a number of worker processes or 'auto'" }).int({ error: 'expected a whole number' })
      .min(1, { error: 'must be at least 1' }).max(256, { error: 'at most 256' }),
  ], { error: "expected a number of worker processes (1-256) or 'auto'" }).default(1),
  cluster: clusterSchema.optional(),
  scheduling: z.enum(['normal', 'batch'], { error: 'expected normal or batch (the Linux scheduling policy of every Moat thread)' }).optional(),
  coalescing: z.strictObject({
    wait: unit(parseWaitMicros).default(DEFAULT_COALESCING.waitUs),
    above: rate.default({ count: DEFAULT_COALESCING.abovePerSecond, perMs: 1000 }),
  }).prefault({}),
  // Each on unless turned off: for a broker that is not affected by that CVE.
  virtualPatches: z.strictObject(Object.fromEntries(virtualPatchIds.map((id) => [id, z.boolean({ error: 'expected true or false' }).default(true)])) as Record<VirtualPatchId, z.ZodDefault<z.ZodBoolean>>, {
    error: `expected a mapping of virtual patches to true or false (${virtualPatchIds.join(', ')})`,
  }).prefault({}),
}, { error: 'the config must be a mapping with at least `listeners` and `upstream`' })

export type ConfigInput = z.input<typeof configSchema>
export type ConfigOutput = z.output<typeof configSchema>
