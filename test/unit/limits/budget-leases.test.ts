/**
 * The lease arithmetic of fleet-wide per-user rates (limits/budget-leases.ts), on a simulated clock
 * against a fake fleet bucket that does what the Lua script of fleet/redis-budget-leases.ts does
 * (the script itself runs against a real Redis in test/integration/cluster-user-rates.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { fleetCapacity, IDLE_MS, LeaseTable, type LeaseCall } from '../../../src/limits/budget-leases.js'
import { BucketSpec, ExcessAction, TokenBucket } from '../../../src/limits/token-bucket.js'

const PERIOD = 100

/** The fleet buckets, as the Lua script keeps them (tokens may go below zero by debt only). */
class FakeFleet {
  readonly buckets = new Map<string, { tokens: number; at: number }>()
  calls = 0

  answer(now: number, calls: readonly LeaseCall[]): number[] {
    this.calls += 1
    return calls.map((c) => {
      const b = this.buckets.get(c.key)
      let tokens = b === undefined ? c.capacity : Math.min(c.capacity, b.tokens + Math.max(0, now - b.at) * c.refill)
      tokens -= c.debt
      let grant = 0
      if (c.delta < 0) {
        grant = c.delta
        tokens = Math.min(c.capacity, tokens - c.delta)
      } else if (c.delta > 0 && tokens > 0) {
        grant = Math.min(c.delta, tokens)
        tokens -= grant
      }
      this.buckets.set(c.key, { tokens, at: now })
      return grant
    })
  }

  renew(table: LeaseTable, now: number): void {
    const plan = table.plan(now)
    if (plan.calls.length > 0) table.settle(plan, this.answer(now, plan.calls), now)
  }
}

/** A user bucket of `perSecond` messages/s, burst 100 ms, tracked in `table`. */
function userBucket(table: LeaseTable, user: string, perSecond: number, now: number, burstMs = 100): TokenBucket {
  const b = new TokenBucket(new BucketSpec({ count: perSecond, perMs: 1000 }, burstMs), ExcessAction.Throttle, false, now)
  table.track(user, [b], ['m'], now)
  return b
}

/** Spends one message per call while the bucket lets it: how many passed. */
function spendFlatOut(b: TokenBucket, now: number, max = 1_000_000): number {
  let n = 0
  while (n < max && b.waitFor(1, now) === 0) {
    b.take(1)
    n += 1
  }
  return n
}

describe('LeaseTable', () => {
  it('lets a new user spend its burst at once, and charges it to the fleet at the next renewal', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    const b = userBucket(table, 'alice', 100, 0)
    expect(b.leased).toBe(true)
    expect(spendFlatOut(b, 0)).toBe(10) // 100/s × 100 ms, before any call
    fleet.renew(table, 50)
    // The debt of 10 messages was charged: the fleet bucket (capacity 20 messages: two periods) had 20, minus 10 spent...
    const tokens = fleet.buckets.get('m:alice')!.tokens
    const grantedMessages = b.credits / b.spec.unitCost
    expect(tokens + b.credits).toBe(fleetCapacity(b, PERIOD) - 10 * b.spec.unitCost)
    expect(grantedMessages).toBeGreaterThan(0)
  })

  it('makes no call for a tracked user that spends nothing', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    userBucket(table, 'idle', 100, 0)
    for (let t = 100; t <= 5000; t += PERIOD) fleet.renew(table, t)
    expect(fleet.calls).toBe(0)
    expect(table.activeCount).toBe(0)
  })

  it('holds two instances spending flat out to about the fleet-wide rate, not twice it', () => {
    const fleet = new FakeFleet()
    const a = new LeaseTable(PERIOD, true)
    const c = new LeaseTable(PERIOD, true)
    const ba = userBucket(a, 'bob', 100, 0)
    const bc = userBucket(c, 'bob', 100, 0)
    let spent = 0
    const seconds = 20
    for (let now = 0; now < seconds * 1000; now += 1) {
      spent += spendFlatOut(ba, now) + spendFlatOut(bc, now)
      if (now % PERIOD === 0) fleet.renew(a, now)
      if (now % PERIOD === 50) fleet.renew(c, now) // the other instance renews out of phase
    }
    // Bound (file header): rate × T + fleet capacity + N × capacity held + N × advance, here
    // 2000 + 20 + 2 × 20 + 2 × 10 messages; and the fleet's budget is not left unused either.
    expect(spent).toBeLessThanOrEqual(100 * seconds + 20 + 40 + 20)
    expect(spent).toBeGreaterThanOrEqual(100 * seconds * 0.95)
    // Both instances got a share (neither starved).
    expect(fleet.calls).toBeGreaterThan(seconds * 10)
  })

  it('gives a user alone on one instance the whole rate', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    const b = userBucket(table, 'carol', 50, 0)
    let spent = 0
    for (let now = 0; now < 10_000; now += 1) {
      spent += spendFlatOut(b, now)
      if (now % PERIOD === 0) fleet.renew(table, now)
    }
    expect(spent).toBeGreaterThanOrEqual(50 * 10 * 0.95)
    expect(spent).toBeLessThanOrEqual(50 * 10 + 5 + 10 + 10)
  })

  it('returns an idle user\'s lease after IDLE_MS, then sleeps without calls, and wakes with a fresh advance', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    const b = userBucket(table, 'dave', 100, 0)
    spendFlatOut(b, 0)
    let now = 0
    for (; now <= 500; now += PERIOD) fleet.renew(table, now)
    expect(table.activeCount).toBe(1)
    for (; now <= 500 + IDLE_MS + 2 * PERIOD; now += PERIOD) fleet.renew(table, now)
    expect(table.activeCount).toBe(0)
    expect(b.credits).toBe(b.spec.capacity) // a fresh advance, the lease given back
    // Back in the fleet bucket: everything but the 10 messages spent at first, refilled since.
    expect(fleet.buckets.get('m:dave')?.tokens ?? fleetCapacity(b, PERIOD)).toBe(fleetCapacity(b, PERIOD))
    const calls = fleet.calls
    for (let t = now; t <= now + 3000; t += PERIOD) fleet.renew(table, t)
    expect(fleet.calls).toBe(calls)
    expect(spendFlatOut(b, now)).toBe(10)
  })

  it('sizes a lease to cover a refused packet larger than the burst (byte rates)', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    // 1000 bytes/s, burst 100 ms: capacity 100 bytes; the fleet bucket holds 200 bytes' worth.
    const b = new TokenBucket(new BucketSpec({ count: 1000, perMs: 1000 }, 100), ExcessAction.Throttle, true, 0)
    table.track('erin', [b], ['b'], 0)
    b.take(100) // the advance spent
    expect(b.waitFor(150, 10)).toBeGreaterThan(0) // a 150-byte packet (above the burst: needs a full local bucket)
    let passed = false
    for (let now = 100; now < 3000 && !passed; now += PERIOD) {
      fleet.renew(table, now)
      passed = b.waitFor(150, now) === 0
    }
    expect(passed).toBe(true)
  })

  it('falls back to a local bucket (the per-instance rate) and leases again from a fresh advance', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    const b = userBucket(table, 'frank', 100, 0)
    spendFlatOut(b, 0)
    fleet.renew(table, 100)
    table.toLocal(200)
    expect(b.leased).toBe(false)
    expect(table.plan(300).calls).toEqual([]) // no calls while local
    // Locally: the per-instance rate, refilled by the clock (100/s: 100 messages over a second, plus the burst).
    let spent = 0
    for (let now = 300; now < 1300; now += 1) spent += spendFlatOut(b, now)
    expect(spent).toBeGreaterThanOrEqual(100)
    expect(spent).toBeLessThanOrEqual(100 + 20 + 1)
    table.toLeased(1300)
    expect(b.leased).toBe(true)
    expect(b.credits).toBe(b.spec.capacity)
  })

  it('returns what a forgotten user held at the next renewal, and its bucket goes local', () => {
    const fleet = new FakeFleet()
    const table = new LeaseTable(PERIOD, true)
    const b = userBucket(table, 'gina', 100, 0)
    spendFlatOut(b, 0)
    fleet.renew(table, 100) // charged 10, granted some
    const held = b.credits
    expect(held).toBeGreaterThan(0)
    table.untrack('gina', 150)
    expect(b.leased).toBe(false)
    const plan = table.plan(200)
    expect(plan.calls).toEqual([{ key: 'm:gina', capacity: fleetCapacity(b, PERIOD), refill: b.spec.refill, debt: 0, delta: -held }])
    fleet.answer(200, plan.calls)
    // All back but the 10 spent, refilled since (100 ms at 100/s: 10 messages): full again.
    expect(fleet.buckets.get('m:gina')!.tokens).toBe(fleetCapacity(b, PERIOD))
  })
})
