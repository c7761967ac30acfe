/**
 * Token buckets in integer arithmetic, refilled lazily from a millisecond clock: no timer per
 * bucket, no allocation per packet. A rate of `count` units per `perMs` ms becomes, in credits,
 * `refill` credits per ms and `unitCost` credits per unit, both whole numbers (fractional counts are
 * scaled by 1000), so repeated refills never drift.
 *
 * A unit may pass when the bucket holds its cost (or is full, for a cost above the capacity, such
 * as a packet larger than a byte bucket); taking may leave the bucket in debt, which the refill pays
 * back first. Over any window of T ms at most `capacity + rate × T` (plus one packet) passes.
 */
import type { Rate } from '../config/types.js'

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
    const scale = Number.isInteger(rate.count) ? 1 : 1000
    this.refill = Math.round(rate.count * scale)
    this.unitCost = rate.perMs * scale
    // At least one unit fits, whatever the burst.
    this.capacity = Math.max(this.unitCost, this.refill * burstMs)
    this.fillMs = Math.ceil(this.capacity / this.refill) + 1
    if (this.refill < 1 || !Number.isSafeInteger(this.capacity) || !Number.isSafeInteger(this.unitCost * 268_435_460)) {
      throw new Error(`rate ${rate.count}/${rate.perMs}ms with burst ${burstMs}ms is outside what a token bucket can count exactly`)
    }
  }
}

export class TokenBucket {
  readonly spec: BucketSpec
  /** What an excess on this bucket does. */
  readonly action: ExcessActionCode
  /** True: costs the packet's size in bytes; false: one unit per packet. */
  readonly perByte: boolean
  credits: number
  private last: number

  constructor(spec: BucketSpec, action: ExcessActionCode, perByte: boolean, now: number) {
    this.spec = spec
    this.action = action
    this.perByte = perByte
    this.credits = spec.capacity
    this.last = now
  }

  private refillTo(now: number): void {
    const elapsed = now - this.last
    if (elapsed <= 0) return
    this.last = now
    const spec = this.spec
    if (elapsed >= spec.fillMs) {
      this.credits = spec.capacity
      return
    }
    const credits = this.credits + elapsed * spec.refill
    this.credits = credits > spec.capacity ? spec.capacity : credits
  }

  /** Milliseconds until `units` may pass (0: now). Takes nothing. */
  waitFor(units: number, now: number): number {
    this.refillTo(now)
    const spec = this.spec
    const cost = units * spec.unitCost
    const need = cost < spec.capacity ? cost : spec.capacity
    if (this.credits >= need) return 0
    return Math.ceil((need - this.credits) / spec.refill)
  }

  take(units: number): void {
    this.credits -= units * this.spec.unitCost
  }
}

/** The clock buckets run on: whole milliseconds, monotonic. */
export function nowMs(): number {
  return Math.floor(performance.now())
}
