/**
 * Fleet-wide per-user rates by leased budgets: the arithmetic, without I/O. Each user's rate
 * (`limits.perUsername`: message, packet, byte) is one token bucket for the whole fleet, kept
 * elsewhere (fleet/redis-budget-leases.ts: Redis). An instance never asks it per packet: the
 * user's local bucket (limits/token-bucket.ts) is switched to leased mode, where it does not refill
 * by itself and holds only what the fleet granted. Every period a renewal loop asks this table what
 * to say for all its users at once (plan), sends it in one round trip, and credits the answers
 * (settle).
 *
 * Per entry (one user, one rate):
 * - It starts dormant with an advance: the configured burst (`capacity`), handed out locally at
 *   once so a first message is never refused for want of a lease (with `drop` or `disconnect` that
 *   would lose it). Whatever of it is spent is charged to the fleet bucket as debt (taken even
 *   below zero) at the next renewal, so in the long run the fleet bucket counts every unit.
 * - Active: it renews when it holds less than half its target, was refused, or owes debt; it
 *   returns what it holds beyond twice its target. The target is what its recent spending
 *   predicts for HORIZON_MS (at least its burst, at least what was refused), never above the fleet
 *   bucket's capacity: an instance holds at most that, whatever it asks.
 * - After IDLE_MS without spending it returns all it holds and goes dormant with a fresh advance,
 *   so idle users cost nothing in Redis.
 *
 * Accuracy, N instances, a window of T ms: what a user spends is at most what the fleet bucket
 * held at its start (≤ capacity) + its refill (rate × T) + what the N instances held then
 * (≤ N × capacity) + the advances not yet charged (≤ N × burst), plus one packet per instance;
 * over long windows the debt pays back the advances, so the average tends to the rate.
 *
 * When the fleet cannot be reached, `toLocal` turns every bucket back into a local one (the
 * per-instance rate, as without a fleet); `toLeased` starts over from dormant entries when it is back.
 */
import type { TokenBucket } from './token-bucket.js'

/** How far ahead a lease is sized from the spending rate seen. */
export const HORIZON_MS = 1000
/** Without spending for this long, an entry returns its lease and leaves the renewal loop. */
export const IDLE_MS = 2000

/** What one renewal says about one fleet bucket. */
export interface LeaseCall {
  /** `<kind>:<username>`: the fleet bucket's key without the store's prefix. */
  readonly key: string
  /** The fleet bucket: capacity and refill per ms, in the local bucket's credits. */
  readonly capacity: number
  readonly refill: number
  /** Credits spent locally without a lease (advances): charged whatever the fleet bucket holds. */
  readonly debt: number
  /** > 0: credits wanted (granted up to what the fleet bucket holds); < 0: credits returned. */
  readonly delta: number
}

/** Where a rate check gets its users' tables: the renewal loop of a fleet (absent: local buckets only). */
export interface UserBudgetLeases {
  /** A table for one config generation's users; the loop renews it from now on. */
  open(): LeaseTable
}

/** The fleet bucket's capacity: the burst, and at least two renewal periods of refill so one instance alone reaches the rate. */
export function fleetCapacity(bucket: TokenBucket, periodMs: number): number {
  return Math.max(bucket.spec.capacity, bucket.spec.refill * periodMs * 2)
}

class LeaseEntry {
  dormant = true
  /** Credits handed out locally that the fleet has not been charged for. */
  uncharged: number
  /** The bucket's credits when last looked at (plus what was credited since). */
  last: number
  lastAt: number
  /** Spending rate seen, credits per ms (smoothed). */
  rate = 0
  idleMs = 0
  /** Goes dormant when the call in flight is answered. */
  closing = false
  /** Debt sent in the call in flight. */
  debtSent = 0
  /** Its user was forgotten: an answer still in flight is not credited. */
  gone = false

  constructor(readonly key: string, readonly bucket: TokenBucket, readonly capacity: number, leased: boolean, now: number) {
    const advance = bucket.spec.capacity
    this.uncharged = leased ? advance : 0
    this.last = advance
    this.lastAt = now
    if (leased) bucket.lease(advance)
  }

  /** Dormant again with a fresh advance; what was spent meanwhile stays owed. */
  sleep(now: number): void {
    const advance = this.bucket.spec.capacity
    this.uncharged += advance - this.bucket.credits
    this.bucket.lease(advance)
    this.dormant = true
    this.last = advance
    this.lastAt = now
    this.rate = 0
    this.idleMs = 0
  }
}

/** One renewal's calls, and the entries they are about (null: a user forgotten since). */
export interface LeasePlan {
  readonly calls: LeaseCall[]
  readonly entries: Array<LeaseEntry | null>
}

export class LeaseTable {
  private readonly users = new Map<string, LeaseEntry[]>()
  /** Returns of users forgotten (LRU eviction), sent with the next renewal. */
  private leaving: LeaseCall[] = []
  private leasedMode: boolean
  /** Set when a newer config generation opened its table: dropped once all its entries are dormant. */
  retiring = false

  constructor(readonly periodMs: number, leased: boolean) {
    this.leasedMode = leased
  }

  get leased(): boolean {
    return this.leasedMode
  }

  get userCount(): number {
    return this.users.size
  }

  /** Entries that are renewing (not dormant). */
  get activeCount(): number {
    let n = 0
    for (const entries of this.users.values()) for (const e of entries) if (!e.dormant) n += 1
    return n
  }

  /** A user's buckets, just made; `kinds[i]` names `buckets[i]` in the fleet (one letter per rate). */
  track(username: string, buckets: readonly TokenBucket[], kinds: readonly string[], now: number): void {
    this.users.set(username, buckets.map((b, i) => new LeaseEntry(`${kinds[i]!}:${username}`, b, fleetCapacity(b, this.periodMs), this.leasedMode, now)))
  }

  /** A user forgotten: its lease returned at the next renewal, its buckets local (a session may still hold them). */
  untrack(username: string, now: number): void {
    const entries = this.users.get(username)
    if (entries === undefined) return
    this.users.delete(username)
    for (const e of entries) {
      e.gone = true
      if (this.leasedMode) {
        const held = Math.max(0, e.bucket.credits)
        if (e.uncharged > 0 || held > 0) this.leaving.push({ key: e.key, capacity: e.capacity, refill: e.bucket.spec.refill, debt: e.uncharged, delta: -held })
      }
      e.bucket.unlease(now)
    }
  }

  /** What to send now; nothing for dormant users that spent nothing and were refused nothing. */
  plan(now: number): LeasePlan {
    const calls = this.leaving
    const entries: Array<LeaseEntry | null> = calls.map(() => null)
    this.leaving = []
    if (!this.leasedMode) return { calls: [], entries: [] }
    for (const list of this.users.values()) {
      for (const e of list) {
        const call = this.planOne(e, now)
        if (call !== null) {
          calls.push(call)
          entries.push(e)
        }
      }
    }
    return { calls, entries }
  }

  private planOne(e: LeaseEntry, now: number): LeaseCall | null {
    const b = e.bucket
    const credits = b.credits
    const refused = b.takeRefused()
    if (e.dormant && credits === e.last && refused === 0) return null
    e.dormant = false
    const spent = Math.max(0, e.last - credits)
    const elapsed = Math.max(1, now - e.lastAt)
    e.rate = e.rate * 0.7 + (spent / elapsed) * 0.3
    e.idleMs = spent === 0 && refused === 0 ? e.idleMs + elapsed : 0
    e.last = credits
    e.lastAt = now
    const spec = b.spec
    const debt = e.uncharged
    let delta = 0
    if (e.idleMs >= IDLE_MS) {
      delta = -Math.max(0, credits)
      e.closing = true
    } else {
      const target = Math.min(e.capacity, Math.max(spec.capacity, Math.ceil(e.rate * HORIZON_MS), spent * 2, refused))
      if (debt > 0 || refused > 0 || credits < target / 2 || credits > target * 2) delta = target - credits
    }
    if (delta === 0 && debt === 0) {
      if (e.closing) e.sleep(now) // nothing held, nothing owed: dormant without a call
      e.closing = false
      return null
    }
    e.debtSent = debt
    return { key: e.key, capacity: e.capacity, refill: spec.refill, debt, delta }
  }

  /** The fleet's answers to `plan`'s calls: credits granted (> 0) or taken back as returned (< 0). */
  settle(plan: LeasePlan, grants: readonly number[], now: number): void {
    if (!this.leasedMode) return // fell back meanwhile: the buckets are local now
    for (let i = 0; i < plan.entries.length; i++) {
      const e = plan.entries[i]
      if (e === null || e === undefined || e.gone) continue
      const grant = grants[i] ?? 0
      e.uncharged -= e.debtSent
      e.debtSent = 0
      e.bucket.credit(grant)
      e.last += grant
      if (e.closing) {
        e.closing = false
        e.sleep(now)
      }
    }
  }

  /** The fleet is unreachable: every bucket refills locally again (the per-instance rate). */
  toLocal(now: number): void {
    this.leasedMode = false
    this.leaving = []
    for (const list of this.users.values()) {
      for (const e of list) {
        e.bucket.unlease(now)
        e.closing = false
        e.debtSent = 0
        e.uncharged = 0
      }
    }
  }

  /** The fleet is back: every entry dormant with a fresh advance (what was spent meanwhile is not charged). */
  toLeased(now: number): void {
    this.leasedMode = true
    for (const list of this.users.values()) {
      for (const e of list) {
        e.uncharged = 0
        e.bucket.lease(0)
        e.sleep(now)
      }
    }
  }

  /** Everything held and owed, to give back when leaving (shutdown); the buckets go local. */
  drain(now: number): LeaseCall[] {
    const calls = this.leaving
    this.leaving = []
    if (this.leasedMode) {
      for (const list of this.users.values()) {
        for (const e of list) {
          const held = Math.max(0, e.bucket.credits)
          if (e.uncharged > 0 || held > 0) calls.push({ key: e.key, capacity: e.capacity, refill: e.bucket.spec.refill, debt: e.uncharged, delta: -held })
        }
      }
    }
    this.toLocal(now)
    return calls
  }

  /** True when no entry is renewing: a retiring table may then be dropped. */
  get quiet(): boolean {
    return this.leaving.length === 0 && this.activeCount === 0
  }
}
