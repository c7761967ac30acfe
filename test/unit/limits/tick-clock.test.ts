/**
 * The per-packet clock is read once per event-loop turn; the token bucket keeps exact counts with
 * credits far past the small-integer range (generous byte rates).
 */
import { describe, expect, it } from 'vitest'
import { BucketSpec, ExcessAction, nowMs, tickNowMs, TokenBucket } from '../../../src/limits/token-bucket.js'

describe('tickNowMs', () => {
  it('is the same within one turn and follows nowMs across turns', async () => {
    const a = tickNowMs()
    expect(tickNowMs()).toBe(a)
    const target = a + 5
    await expect.poll(async () => {
      await new Promise((r) => setImmediate(r))
      return tickNowMs()
    }).toBeGreaterThanOrEqual(target)
    expect(tickNowMs()).toBeLessThanOrEqual(nowMs())
  })
})

describe('TokenBucket with a huge capacity', () => {
  it('counts exactly beyond 2^31 credits', () => {
    const spec = new BucketSpec({ count: 100 * 1024 ** 3, perMs: 1000 }, 100) // 100 GiB/s, 10 GiB burst
    const b = new TokenBucket(spec, ExcessAction.Throttle, true, 0)
    expect(b.credits).toBe(spec.capacity)
    b.take(3 * 1024 ** 3)
    expect(b.credits).toBe(spec.capacity - 3 * 1024 ** 3 * spec.unitCost)
    expect(b.waitFor(7 * 1024 ** 3, 0)).toBe(0)
    expect(b.waitFor(8 * 1024 ** 3, 0)).toBeGreaterThan(0)
    b.take(8 * 1024 ** 3) // in debt
    expect(b.credits).toBeLessThan(0)
    expect(b.waitFor(1, 1)).toBeGreaterThan(0)
  })
})
