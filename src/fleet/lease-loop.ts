/**
 * The renewal loop of fleet-wide per-user rates (`limits.perUsername`), whatever keeps the fleet
 * buckets: every PERIOD_MS it asks each lease table (limits/budget-leases.ts, one per config
 * generation) what to say for its users, sends all of it in ONE exchange through its transport,
 * and credits the answers. Two transports: Redis (fleet/redis-budget-leases.ts: a pipeline of Lua
 * calls, fleet-wide across instances) and the cluster primary over the worker IPC channel
 * (workers/worker-budget-leases.ts: fleet-wide across the workers of one `workers: N` instance).
 * Nothing here runs per packet; a user neither spending nor refused costs no exchange.
 *
 * Transport down (not `up`, or an exchange failing or timing out): every table turns its buckets
 * back into per-process ones (the rate in each instance or worker, at most N × the rate over N),
 * logged once per transition and counted (moat_cluster_rate_lease_fallbacks_total). Once the
 * transport is up again, and no sooner than RETRY_MS after a failed exchange, leasing is tried
 * again; it is announced only once an exchange succeeds, so a store that stays away costs no log
 * line per retry.
 * There is no fail-closed mode: refusing every message while the store is away would stop the
 * fleet for a limit meant to shape it.
 */
import { LeaseTable, type LeaseCall, type LeasePlan, type UserBudgetLeases } from '../limits/budget-leases.js'
import { nowMs } from '../limits/token-bucket.js'
import type { Logger } from '../log/logger.js'
import { ClusterStats, storeOpIndex } from '../stats/fleet-stats.js'

export const PERIOD_MS = 100
const RETRY_MS = 1000

/** Where the fleet buckets are: one exchange answers every call, the grants in the calls' order. */
export interface LeaseTransport {
  /** Named in log lines: "redis", "the cluster primary". */
  readonly source: string
  /** False: known unreachable now (no exchange is tried). */
  readonly up: boolean
  send(calls: readonly LeaseCall[]): Promise<number[]>
}

export class LeaseLoop implements UserBudgetLeases {
  private tables: LeaseTable[] = []
  private leased = false
  /** The last state logged (one line per real transition). */
  private announced: 'none' | 'fleet' | 'local' = 'none'
  private retryAt = 0
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private running: Promise<void> | null = null

  constructor(private readonly transport: LeaseTransport, private readonly logger: Logger, private readonly stats: ClusterStats = new ClusterStats(), private readonly periodMs = PERIOD_MS) {}

  /** Whether per-user rates are fleet-wide now (false: per process, the store unreachable). */
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

  /** One renewal of every table: exported for tests and the bench, which drive it without the timer. */
  async renew(): Promise<void> {
    const now = nowMs()
    this.tables = this.tables.filter((t) => {
      if (!t.retiring || !t.quiet) return true
      t.toLocal(now)
      return false
    })
    if (!this.transport.up) {
      if (this.leased) this.fallBack(now, `${this.transport.source} unreachable`)
      return
    }
    if (!this.leased) {
      if (now < this.retryAt) return
      this.leased = true
      for (const t of this.tables) t.toLeased(now)
    }
    const plans = this.tables.map((t) => ({ table: t, plan: t.plan(now) }))
    const calls = plans.flatMap((p) => p.plan.calls)
    // Nothing to ask: at start that is as good as an answer; after a failure only an exchange tells.
    if (calls.length === 0) {
      if (this.announced === 'none') this.confirm()
      return
    }
    let grants: number[]
    try {
      grants = await this.send(calls)
    } catch (err) {
      this.retryAt = nowMs() + RETRY_MS
      if (this.leased) this.fallBack(nowMs(), (err as Error).message)
      return
    }
    this.confirm()
    const settled = nowMs()
    let at = 0
    for (const { table, plan } of plans) {
      settleSlice(table, plan, grants, at, settled)
      at += plan.calls.length
    }
  }

  private async send(calls: readonly LeaseCall[]): Promise<number[]> {
    const i = storeOpIndex.rate_leases
    const started = performance.now()
    this.stats.calls[i]! += 1
    try {
      const grants = await this.transport.send(calls)
      if (grants.length !== calls.length) throw new Error(`${grants.length} grants for ${calls.length} calls`)
      return grants
    } catch (err) {
      this.stats.errors[i]! += 1
      throw err
    } finally {
      this.stats.seconds[i]! += (performance.now() - started) / 1000
    }
  }

  /** Leasing works (an exchange succeeded, or the transport is up with nothing to ask): said once. */
  private confirm(): void {
    if (this.announced === 'fleet') return
    this.announced = 'fleet'
    this.logger.info({ event: 'user_rate_leases', outcome: 'fleet', source: this.transport.source }, `per-user rates are fleet-wide (budgets leased from ${this.transport.source})`)
  }

  /** Back to per-process buckets; logged and counted only when leasing had been said to work (or never said). */
  private fallBack(now: number, reason: string): void {
    this.leased = false
    for (const t of this.tables) t.toLocal(now)
    if (this.announced === 'local') return
    this.announced = 'local'
    this.stats.rateLeaseFallbacks += 1
    this.logger.error({ event: 'user_rate_leases', outcome: 'local', source: this.transport.source, reason }, `per-user rates fall back to per-process buckets (each allows the full rate) until ${this.transport.source} answers`)
  }

  /** Stops renewing and gives back what this process holds (best effort: one last exchange). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    await this.running
    const now = nowMs()
    const calls = this.tables.flatMap((t) => t.drain(now))
    if (this.leased && this.transport.up && calls.length > 0) await this.send(calls).catch(() => { /* leaving anyway: unspent credits are only lost to this user for a while */ })
    this.leased = false
  }
}

function settleSlice(table: LeaseTable, plan: LeasePlan, grants: readonly number[], from: number, now: number): void {
  table.settle(plan, grants.slice(from, from + plan.calls.length), now)
}
