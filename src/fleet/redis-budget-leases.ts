/**
 * Fleet-wide per-user rates (`limits.perUsername` with `cluster.redis`): the renewal loop
 * (fleet/lease-loop.ts) with Redis as its transport. Each renewal is ONE round trip: a pipeline of
 * Lua calls, each over up to BATCH_KEYS buckets, so no single script blocks Redis for long. The
 * same bucket arithmetic runs in JS in a `workers: N` primary without Redis
 * (limits/fleet-buckets.ts); test/unit/limits/fleet-buckets.test.ts and
 * test/integration/redis-budget-leases.test.ts hold both to the same cases.
 *
 * Keys (under the store's hash tag, so one cluster slot; see the list in redis-store.ts):
 * - `{p}:ur:<kind>:<username>`  a user's fleet bucket of one rate (kind m, p or b: messages,
 *   packets, bytes): a hash (t: credits, a: Redis TIME in ms of the last update), deleted when
 *   full, else expiring once it would be full again. Long user names are hashed.
 *
 * Redis down (the store not `up`, or a renewal failing): per-instance buckets until it answers
 * (fleet/lease-loop.ts); the per-user rates have no `onRedisDown` mode.
 */
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { LeaseCall } from '../limits/budget-leases.js'
import type { Logger } from '../log/logger.js'
import { ClusterStats } from '../stats/fleet-stats.js'
import { LeaseLoop, PERIOD_MS, type LeaseTransport } from './lease-loop.js'

export { PERIOD_MS }
/** Buckets per Lua call: a script over 500 keys runs well under a millisecond. */
export const BATCH_KEYS = 500

// ARGV per key: capacity, refill per ms, debt, delta. Tokens may go below zero by debt only.
// limits/fleet-buckets.ts is the same arithmetic in JS: change both together.
export const LEASE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[4 * i - 3])
  local refill = tonumber(ARGV[4 * i - 2])
  local delta = tonumber(ARGV[4 * i])
  local b = redis.call('HMGET', KEYS[i], 't', 'a')
  local tokens = capacity
  if b[1] then
    tokens = math.min(capacity, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * refill)
  end
  tokens = tokens - tonumber(ARGV[4 * i - 1])
  local grant = 0
  if delta < 0 then
    grant = delta
    tokens = math.min(capacity, tokens - delta)
  elseif delta > 0 and tokens > 0 then
    grant = math.min(delta, tokens)
    tokens = tokens - grant
  end
  out[i] = grant
  if tokens >= capacity then
    redis.call('DEL', KEYS[i])
  else
    redis.call('HSET', KEYS[i], 't', string.format('%.0f', tokens), 'a', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((capacity - tokens) / refill) + 1000)
  end
end
return out`

/** What the loop needs of the shared store (RedisStore has it). */
export interface LeaseStore {
  readonly redis: Redis | Cluster
  readonly up: boolean
}

type LeaseClient = (Redis | Cluster) & {
  moatUserLease(numKeys: number, ...keysAndArgs: Array<string | number>): Promise<number[]>
}

/** The fleet buckets in Redis: one pipeline of Lua calls per renewal. */
export class RedisLeaseTransport implements LeaseTransport {
  readonly source = 'redis'
  private readonly client: LeaseClient
  private readonly keyPrefix: string

  /** `prefix`: `cluster.redis.prefix`. */
  constructor(private readonly store: LeaseStore, prefix: string) {
    store.redis.defineCommand('moatUserLease', { lua: LEASE })
    this.client = store.redis as LeaseClient
    this.keyPrefix = `{${prefix}}:ur:`
  }

  get up(): boolean {
    return this.store.up
  }

  /** The calls in one pipeline of Lua calls (one round trip); the grants in the same order. */
  async send(calls: readonly LeaseCall[]): Promise<number[]> {
    const pipeline = this.client.pipeline() as unknown as { moatUserLease(...a: Array<string | number>): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> }
    for (let from = 0; from < calls.length; from += BATCH_KEYS) {
      const batch = calls.slice(from, from + BATCH_KEYS)
      const keys = batch.map((c) => this.keyPrefix + leaseKey(c.key))
      const args: Array<string | number> = []
      for (const c of batch) args.push(c.capacity, c.refill, c.debt, c.delta)
      pipeline.moatUserLease(batch.length, ...keys, ...args)
    }
    const results = await pipeline.exec()
    if (results === null) throw new Error('pipeline aborted')
    const grants: number[] = []
    for (const [err, out] of results) {
      if (err !== null) throw err
      for (const g of out as number[]) grants.push(Number(g))
    }
    return grants
  }
}

/** A call's key as stored: `<kind>:<username>`, a long name hashed (a user name is up to 65,535 bytes). */
export function leaseKey(tail: string): string {
  return tail.length <= 200 ? tail : `${tail.slice(0, 2)}#${createHash('sha256').update(tail).digest('base64')}`
}

/** The renewal loop over Redis (what a Moat with `cluster.redis` runs). */
export class RedisBudgetLeases extends LeaseLoop {
  /** `prefix`: `cluster.redis.prefix`. */
  constructor(store: LeaseStore, prefix: string, logger: Logger, stats: ClusterStats = new ClusterStats(), periodMs = PERIOD_MS) {
    super(new RedisLeaseTransport(store, prefix), logger, stats, periodMs)
  }
}
