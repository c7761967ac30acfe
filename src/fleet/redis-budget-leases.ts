/**
 * The renewal loop of fleet-wide per-user rates (`limits.perUsername` with `cluster.redis`): every
 * PERIOD_MS it asks each lease table (limits/budget-leases.ts, one per config generation) what to
 * say for its users, sends all of it in ONE round trip (a pipeline of Lua calls, each over up to
 * BATCH_KEYS buckets, so no single script blocks Redis for long), and credits the answers. Nothing
 * here runs per packet; a user neither spending nor refused costs no Redis call.
 *
 * Keys (under the store's hash tag, so one cluster slot; see the list in redis-store.ts):
 * - `{p}:ur:<kind>:<username>`  a user's fleet bucket of one rate (kind m, p or b: messages,
 *   packets, bytes): a hash (t: credits, a: Redis TIME in ms of the last update), deleted when
 *   full, else expiring once it would be full again. Long user names are hashed.
 *
 * Redis down (the store not `up`, or a renewal failing): every table turns its buckets back into
 * per-instance ones (the rate on each instance, at most N × the rate over N instances, as without a
 * fleet); logged once per transition and counted (moat_cluster_rate_lease_fallbacks_total). Once
 * the store is up again (and no sooner than RETRY_MS after a failed renewal), leasing resumes.
 * The per-user rates have no `onRedisDown` mode: refusing every message while Redis is away
 * (fail-closed) would stop the fleet for a limit meant to shape it.
 */
import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { LeaseTable, type LeaseCall, type LeasePlan, type UserBudgetLeases } from '../limits/budget-leases.js'
import { nowMs } from '../limits/token-bucket.js'
import type { Logger } from '../log/logger.js'
import { ClusterStats, storeOpIndex } from '../stats/fleet-stats.js'

export const PERIOD_MS = 100
/** Buckets per Lua call: a script over 500 keys runs well under a millisecond. */
export const BATCH_KEYS = 500
const RETRY_MS = 1000

// ARGV per key: capacity, refill per ms, debt, delta. Tokens may go below zero by debt only.
const LEASE = `
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

export class RedisBudgetLeases implements UserBudgetLeases {
  private readonly client: LeaseClient
  private readonly keyPrefix: string
  private tables: LeaseTable[] = []
  private leased = false
  private retryAt = 0
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private running: Promise<void> | null = null

  /** `prefix`: `cluster.redis.prefix`. */
  constructor(private readonly store: LeaseStore, prefix: string, private readonly logger: Logger, private readonly stats: ClusterStats = new ClusterStats(), private readonly periodMs = PERIOD_MS) {
    store.redis.defineCommand('moatUserLease', { lua: LEASE })
    this.client = store.redis as LeaseClient
    this.keyPrefix = `{${prefix}}:ur:`
  }

  /** Whether per-user rates are fleet-wide now (false: per instance, Redis unreachable). */
  get fleetWide(): boolean {
    return this.leased
  }

  /** Users being renewed now, every table together. */
  get activeUsers(): number {
    let n = 0
    for (const t of this.tables) n += t.activeCount
    return n
  }

  open(): LeaseTable {
    for (const t of this.tables) t.retiring = true
    const table = new LeaseTable(this.periodMs, this.leased)
    this.tables.push(table)
    return table
  }

  start(): void {
    this.schedule()
  }

  private schedule(): void {
    if (this.closed) return
    this.timer = setTimeout(() => {
      this.running = this.renew().finally(() => {
        this.running = null
        this.schedule()
      })
    }, this.periodMs)
    this.timer.unref()
  }

  /** One renewal of every table: exported for the bench, which drives it without the timer. */
  async renew(): Promise<void> {
    const now = nowMs()
    this.tables = this.tables.filter((t) => {
      if (!t.retiring || !t.quiet) return true
      t.toLocal(now)
      return false
    })
    if (!this.store.up) {
      if (this.leased) this.fallBack(now, 'redis unreachable')
      return
    }
    if (!this.leased) {
      if (now < this.retryAt) return
      this.leased = true
      for (const t of this.tables) t.toLeased(now)
      this.logger.info({ event: 'user_rate_leases', outcome: 'fleet' }, 'per-user rates are fleet-wide (budgets leased from redis)')
    }
    const plans = this.tables.map((t) => ({ table: t, plan: t.plan(now) }))
    const calls = plans.flatMap((p) => p.plan.calls)
    if (calls.length === 0) return
    let grants: number[]
    try {
      grants = await this.send(calls)
    } catch (err) {
      this.retryAt = nowMs() + RETRY_MS
      if (this.leased) this.fallBack(nowMs(), (err as Error).message)
      return
    }
    const settled = nowMs()
    let at = 0
    for (const { table, plan } of plans) {
      settleSlice(table, plan, grants, at, settled)
      at += plan.calls.length
    }
  }

  /** The calls in one pipeline of Lua calls (one round trip); the grants in the same order. */
  private async send(calls: readonly LeaseCall[]): Promise<number[]> {
    const i = storeOpIndex.rate_leases
    const started = performance.now()
    this.stats.calls[i]! += 1
    try {
      const pipeline = this.client.pipeline() as unknown as { moatUserLease(...a: Array<string | number>): unknown; exec(): Promise<Array<[Error | null, unknown]> | null> }
      for (let from = 0; from < calls.length; from += BATCH_KEYS) {
        const batch = calls.slice(from, from + BATCH_KEYS)
        const keys = batch.map((c) => this.key(c.key))
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
    } catch (err) {
      this.stats.errors[i]! += 1
      throw err
    } finally {
      this.stats.seconds[i]! += (performance.now() - started) / 1000
    }
  }

  private key(tail: string): string {
    // tail is `<kind>:<username>`; a long name is hashed (a user name is up to 65,535 bytes).
    return tail.length <= 200 ? this.keyPrefix + tail : `${this.keyPrefix}${tail.slice(0, 2)}#${createHash('sha256').update(tail).digest('base64')}`
  }

  private fallBack(now: number, reason: string): void {
    this.leased = false
    for (const t of this.tables) t.toLocal(now)
    this.stats.rateLeaseFallbacks += 1
    this.logger.error({ event: 'user_rate_leases', outcome: 'local', reason }, 'per-user rates fall back to per-instance buckets (each instance allows the full rate) until redis answers')
  }

  /** Stops renewing and gives back what this instance holds (best effort: one last round trip). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    await this.running
    const now = nowMs()
    const calls = this.tables.flatMap((t) => t.drain(now))
    if (this.leased && this.store.up && calls.length > 0) await this.send(calls).catch(() => { /* leaving anyway: unspent credits are only lost to this user for a while */ })
    this.leased = false
  }
}

function settleSlice(table: LeaseTable, plan: LeasePlan, grants: readonly number[], from: number, now: number): void {
  table.settle(plan, grants.slice(from, from + plan.calls.length), now)
}
