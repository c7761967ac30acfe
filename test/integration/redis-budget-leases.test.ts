/**
 * The lease script of fleet-wide per-user rates (fleet/redis-budget-leases.ts) against a real
 * redis-server, driven renewal by renewal (renew(), no timer): what it grants, takes as debt and
 * takes back, read from the keys themselves; keys under the prefix's hash tag, long names hashed.
 * The script itself is held to the cases the primary's JS buckets are (test/helpers/lease-cases.ts).
 */
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { LEASE, RedisBudgetLeases } from '../../src/fleet/redis-budget-leases.js'
import { fleetCapacity, IDLE_MS } from '../../src/limits/budget-leases.js'
import { BucketSpec, ExcessAction, nowMs, TokenBucket } from '../../src/limits/token-bucket.js'
import { ClusterStats, storeOpIndex } from '../../src/stats/fleet-stats.js'
import { uid } from '../helpers/clients.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { leaseCases } from '../helpers/lease-cases.js'

let redis: RedisServer
let client: Redis
let admin: Redis

beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url)
  admin = new Redis(redis.url)
})

afterAll(async () => {
  client?.disconnect()
  admin?.disconnect()
  await redis?.stop()
})

/** A message bucket of 100/s (burst 100 ms: 10 messages) leased through a fresh loop. */
async function leased(prefix: string, username: string): Promise<{ leases: RedisBudgetLeases; bucket: TokenBucket; stats: ClusterStats }> {
  const stats = new ClusterStats()
  const leases = new RedisBudgetLeases({ redis: client, up: true }, prefix, pino({ level: 'silent' }), stats)
  const table = leases.open()
  await leases.renew() // reachable: leasing from now on
  const bucket = new TokenBucket(new BucketSpec({ count: 100, perMs: 1000 }, 100), ExcessAction.Drop, false, nowMs())
  table.track(username, [bucket], ['m'], nowMs())
  return { leases, bucket, stats }
}

async function tokens(key: string): Promise<number | null> {
  const t = await admin.hget(key, 't')
  return t === null ? null : Number(t)
}

describe('RedisBudgetLeases', () => {
  it('charges the advance as debt and grants a lease from the fleet bucket, in one script call', async () => {
    const prefix = uid('lease')
    const { leases, bucket, stats } = await leased(prefix, 'alice')
    const unit = bucket.spec.unitCost
    expect(bucket.leased).toBe(true)
    for (let i = 0; i < 10; i++) bucket.take(1) // the advance (the burst) spent
    expect(bucket.waitFor(1, nowMs())).toBeGreaterThan(0)
    await leases.renew()
    expect(stats.calls[storeOpIndex.rate_leases]).toBe(1)
    const left = await tokens(`{${prefix}}:ur:m:alice`)
    expect(left).not.toBeNull()
    // What the fleet bucket lost is what was charged (10 messages) plus what this instance now holds.
    expect(left! + 10 * unit + bucket.credits).toBeGreaterThanOrEqual(fleetCapacity(bucket, 100))
    expect(bucket.credits).toBeGreaterThan(0)
    expect(await admin.pttl(`{${prefix}}:ur:m:alice`)).toBeGreaterThan(0)
    await leases.close()
  })

  it('returns what an idle user holds, and the bucket key goes once it is full', async () => {
    const prefix = uid('lease')
    const { leases, bucket } = await leased(prefix, 'bob')
    bucket.take(5)
    await leases.renew()
    const key = `{${prefix}}:ur:m:bob`
    expect(await tokens(key)).not.toBeNull()
    // Idle past IDLE_MS: a renewal then gives everything back; dormant again, with a fresh advance.
    await vi.waitFor(async () => {
      await leases.renew()
      expect(bucket.credits).toBe(bucket.spec.capacity)
    }, { timeout: IDLE_MS * 3, interval: 100 })
    // Returned, and refilled since: full, so the key was deleted.
    expect(await admin.exists(key)).toBe(0)
    await leases.close()
  })

  it('hashes a long user name, under the prefix\'s hash tag', async () => {
    const prefix = uid('lease')
    const long = 'u'.repeat(500)
    const { leases, bucket } = await leased(prefix, long)
    bucket.take(3)
    await leases.renew()
    const keys = await admin.keys(`{${prefix}}:*`)
    expect(keys).toHaveLength(1)
    expect(keys[0]).toMatch(new RegExp(`^\\{${prefix}\\}:ur:m:#[A-Za-z0-9+/=]{44}$`))
    await leases.close()
  })

  it('gives back what it holds at close', async () => {
    const prefix = uid('lease')
    const { leases, bucket } = await leased(prefix, 'carol')
    for (let i = 0; i < 10; i++) bucket.take(1)
    await leases.renew()
    const held = bucket.credits
    const before = (await tokens(`{${prefix}}:ur:m:carol`))!
    await leases.close()
    expect(bucket.leased).toBe(false)
    // Back in the fleet bucket (plus its refill meanwhile, capped at its capacity).
    const after = await tokens(`{${prefix}}:ur:m:carol`)
    expect(after === null ? fleetCapacity(bucket, 100) : after).toBeGreaterThanOrEqual(Math.min(fleetCapacity(bucket, 100), before + held))
  })
})

describe('the LEASE script, the cases of the primary\'s JS buckets', () => {
  for (const c of leaseCases) {
    it(c.name, async () => {
      const key = `{${uid('case')}}:ur:m:alice`
      for (const step of c.steps) {
        // The wait, played by moving the bucket's last update back (its refill is computed from it).
        if (step.waitMs !== undefined) await admin.hincrby(key, 'a', -step.waitMs)
        const out = await client.eval(LEASE, 1, key, c.capacity, c.refill, step.debt, step.delta) as number[]
        expect(out).toEqual([step.grant])
        expect(await tokens(key)).toBe(step.tokens)
      }
    })
  }
})
