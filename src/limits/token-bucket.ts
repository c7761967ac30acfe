/**
 * Token buckets in integer arithmetic, refilled lazily from a millisecond clock: no timer per
 * bucket, no allocation per packet. A rate of `count` units per `perMs` ms becomes, in credits,
 * `refill` credits per ms and `unitCost` credits per unit, both whole numbers (fractional counts are
 * scaled by 1000), so repeated refills never drift.
 *
 * A unit may pass when the bucket holds its cost (or is full, for a cost above the capacity, such
 * as a packet larger than a byte bucket); taking may leave the bucket in debt, which the refill pays
 * back first. Over any window of T ms at most `capacity + rate × T` (plus one packet) passes.
 *
 * A bucket may instead be leased (limits/budget-leases.ts): it then never refills by itself, and
 * its credits are what a fleet-wide budget granted this instance. The per-packet path is the same
 * for both: a leased bucket's last refill is +Infinity, so the elapsed time is never positive.
 */
import type { Rate } from '../config/types.js'
import { rateCredits } from '../config/units.js'

/** The shortest wait a leased bucket answers (renewals come every 100 ms or so). */
const LEASED_WAIT_MS = 25

export const ExcessAction = { None: 0, Throttle: 1, Drop: 2, Disconnect: 3 } as const
export type ExcessActionCode = (typeof ExcessAction)[keyof typeof ExcessAction]

export function excessCode(action: 'throttle' | 'drop' | 'disconnect'): ExcessActionCode {
  return action === 'throttle' ? ExcessAction.Throttle : action === 'drop' ? ExcessAction.Drop : ExcessAction.Disconnect
}

/** A rate compiled to integer credits; shared by every bucket built from it. */
export class BucketSpec {
  readonly refill: number
  readonly unitCost: number
  readonly capacity: number
  /** Milliseconds after which an idle bucket is full whatever it held. */
  readonly fillMs: number

  constructor(rate: Rate, burstMs: number) {
    const credits = rateCredits(rate, burstMs)
    this.refill = credits.refill
    this.unitCost = credits.unitCost
    this.capacity = credits.capacity
    this.fillMs = Math.ceil(this.capacity / this.refill) + 1
  }
}

export class TokenBucket {
  readonly spec: BucketSpec
  /** What an excess on this bucket does. */
  readonly action: ExcessActionCode
  /** True: costs the packet's size in bytes; false: one unit per packet. */
  readonly perByte: boolean
  /**
   * [credits, last refill ms (+Infinity: leased), the largest cost refused since the lease loop last
   * looked]. In a typed array, not fields: a credit count past the small-integer range (a generous
   * byte rate) would box a new heap number on every store to a field.
   */
  private readonly slots = new Float64Array(3)

  constructor(spec: BucketSpec, action: ExcessActionCode, perByte: boolean, now: number) {
    this.spec = spec
    this.action = action
    this.perByte = perByte
    this.slots[0] = spec.capacity
    this.slots[1] = now
  }

  /** Credits held now (may be negative: debt). */
  get credits(): number {
    return this.slots[0]!
  }

  private refillTo(now: number): void {
    const slots = this.slots
    const elapsed = now - slots[1]!
    if (elapsed <= 0) return
    slots[1] = now
    const spec = this.spec
    if (elapsed >= spec.fillMs) {
      slots[0] = spec.capacity
      return
    }
    const credits = slots[0]! + elapsed * spec.refill
    slots[0] = credits > spec.capacity ? spec.capacity : credits
  }

  /** Milliseconds until `units` may pass (0: now). Takes nothing. */
  waitFor(units: number, now: number): number {
    this.refillTo(now)
    const spec = this.spec
    const cost = units * spec.unitCost
    const need = cost < spec.capacity ? cost : spec.capacity
    const slots = this.slots
    const credits = slots[0]!
    if (credits >= need) return 0
    // Refused: what a lease must cover (read by the lease loop; one store, on the refusal path only).
    if (need > slots[2]!) slots[2] = need
    const wait = Math.ceil((need - credits) / spec.refill)
    // A leased bucket gains credits only at a renewal: checking again sooner would find none.
    return wait < LEASED_WAIT_MS && slots[1] === Infinity ? LEASED_WAIT_MS : wait
  }

  take(units: number): void {
    this.slots[0] = this.slots[0]! - units * this.spec.unitCost
  }

  /** True while the credits come from a fleet-wide lease rather than the local refill. */
  get leased(): boolean {
    return this.slots[1] === Infinity
  }

  /** Stops the local refill: from now on only `credit` adds credits (a lease), holding `credits`. */
  lease(credits: number): void {
    this.slots[0] = credits
    this.slots[1] = Infinity
  }

  /** Back to the local refill from `now`, keeping what it holds (capped at its capacity at the next refill). */
  unlease(now: number): void {
    this.slots[1] = now
  }

  /** Adds (or, negative, removes) credits: a lease granted or returned. */
  credit(credits: number): void {
    this.slots[0] = this.slots[0]! + credits
  }

  /** The largest cost refused since the last call (0: none), and forgets it. */
  takeRefused(): number {
    const refused = this.slots[2]!
    this.slots[2] = 0
    return refused
  }
}

/** The clock buckets run on: whole milliseconds, monotonic. */
export function nowMs(): number {
  return Math.floor(performance.now())
}

// The per-packet clock: [ms, 1 when valid for the current event-loop turn].
const tick = new Float64Array(2)
function expireTick(): void {
  tick[1] = 0
}

/**
 * nowMs(), read at most once per event-loop turn: every packet of one chunk sees the same time.
 * Reading a clock boxes a heap number on every call (performance.now, Date.now), which the
 * per-packet path must not do; a chunk is processed in far less than a millisecond.
 */
export function tickNowMs(): number {
  if (tick[1] === 0) {
    tick[0] = Math.floor(performance.now())
    tick[1] = 1
    setImmediate(expireTick)
  }
  return tick[0]!
}
