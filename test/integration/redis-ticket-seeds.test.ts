/**
 * The fleet's session-ticket seeds against a real redis-server: instances share one seed per
 * listener under the store's hash tag; when it is due exactly one new seed is made, and every
 * instance adopts it; while Redis is away an instance rotates a seed of its own, and all join one
 * seed again when Redis is back (empty, as after a restart). Through two Moat processes and real
 * TLS clients: tls-resumption-fleet.test.ts.
 */
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RedisConfig } from '../../src/config/types.js'
import { RedisStore } from '../../src/fleet/redis-store.js'
import { RedisTicketSeeds } from '../../src/fleet/redis-ticket-seeds.js'
import { uid } from '../helpers/clients.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const logger = pino({ level: process.env.MOAT_TEST_LOG ?? 'silent' })
let redis: RedisServer
let reader: Redis
const stores: RedisStore[] = []
const seedsMade: RedisTicketSeeds[] = []

beforeAll(async () => {
  redis = await startRedis()
  reader = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
  reader.on('error', () => {})
  await reader.connect()
})
afterAll(async () => {
  for (const s of seedsMade) s.close()
  for (const s of stores) await s.close()
  reader.disconnect()
  await redis?.stop()
})

function config(prefix: string): RedisConfig {
  return {
    mode: 'url', url: redis.url, sentinel: null, nodes: [], tls: false, passwordFile: null,
    prefix, commandTimeoutMs: 500, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' },
  }
}

/** An instance: its store (connected) and its seeds, with every seed each listener was given. */
async function instance(prefix: string, listener: string, rotateMs: number): Promise<{ seeds: RedisTicketSeeds; got: Buffer[]; latest: () => string }> {
  const store = new RedisStore(config(prefix), logger)
  stores.push(store)
  store.start()
  expect(await store.whenUp(5000)).toBe(true)
  const seeds = new RedisTicketSeeds(store.redis, prefix, logger)
  seedsMade.push(seeds)
  const got: Buffer[] = []
  seeds.watch(listener, rotateMs, (seed) => got.push(seed))
  return { seeds, got, latest: () => got[got.length - 1]!.toString('hex') }
}

describe('RedisTicketSeeds', () => {
  it('gives every instance the seed kept in {prefix}:tls:<listener>, one per listener', async () => {
    const prefix = uid('seeds')
    const a = await instance(prefix, 'secure', 3_600_000)
    const b = await instance(prefix, 'secure', 3_600_000)
    const other = await instance(prefix, 'other', 3_600_000)
    const kept = async (listener: string): Promise<string> => Buffer.from((await reader.hget(`{${prefix}}:tls:${listener}`, 'seed')) ?? '', 'base64').toString('hex')
    await expect.poll(async () => a.latest() === (await kept('secure')) && b.latest() === a.latest(), { timeout: 5000 }).toBe(true)
    await expect.poll(async () => other.latest() === (await kept('other')), { timeout: 5000 }).toBe(true)
    expect(other.latest()).not.toBe(a.latest())
    expect(a.got[a.got.length - 1]).toHaveLength(32)
    // The hash expires if no instance is left to rotate it.
    expect(await reader.pttl(`{${prefix}}:tls:secure`)).toBeGreaterThan(3_600_000)
    expect((await reader.keys(`{${prefix}}:tls:*`)).sort()).toEqual([`{${prefix}}:tls:other`, `{${prefix}}:tls:secure`])
  })

  it('rotates on the period: five instances asking together make one new seed each time, and all adopt it', async () => {
    const prefix = uid('rotate')
    const fleet = await Promise.all(Array.from({ length: 5 }, () => instance(prefix, 'secure', 1000)))
    await expect.poll(() => new Set(fleet.map((i) => i.latest())).size, { timeout: 5000 }).toBe(1)
    const first = fleet[0]!.latest()
    await new Promise((resolve) => setTimeout(resolve, 3500))
    await expect.poll(() => new Set(fleet.map((i) => i.latest())).size, { timeout: 5000 }).toBe(1)
    expect(fleet[0]!.latest()).not.toBe(first)
    // Every instance went through the same seeds since they agreed: one maker per rotation.
    const since = fleet.map((i) => i.got.map((s) => s.toString('hex')).slice(i.got.findIndex((s) => s.toString('hex') === first)))
    for (const seq of since) expect(seq).toEqual(since[0])
    expect(since[0]!.length).toBeGreaterThanOrEqual(3)
  })

  it('while Redis is down an instance rotates its own seed when due; once Redis is back all share one again', async () => {
    const prefix = uid('outage')
    const a = await instance(prefix, 'secure', 1000)
    const b = await instance(prefix, 'secure', 1000)
    await expect.poll(() => a.latest() === b.latest(), { timeout: 5000 }).toBe(true)
    await redis.stop()
    const before = a.got.length
    await expect.poll(() => a.got.length, { timeout: 5000 }).toBeGreaterThan(before + 1)
    expect(a.latest()).not.toBe(b.latest()) // each on its own now
    await redis.start()
    await expect.poll(() => a.latest() === b.latest(), { timeout: 15_000 }).toBe(true)
    await reader.connect().catch(() => {})
  }, 30_000)
})
