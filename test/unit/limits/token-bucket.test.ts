import { describe, expect, it } from 'vitest'
import { BucketSpec, ExcessAction, TokenBucket } from '../../../src/limits/token-bucket.js'

const bucket = (count: number, perMs: number, burstMs: number, perByte = false): TokenBucket =>
  new TokenBucket(new BucketSpec({ count, perMs }, burstMs), ExcessAction.Throttle, perByte, 0)

/** Takes units while the bucket allows at time `now`; returns how many passed. */
function drain(b: TokenBucket, now: number, units = 1, max = 100_000): number {
  let passed = 0
  while (passed < max && b.waitFor(units, now) === 0) {
    b.take(units)
    passed++
  }
  return passed
}

describe('TokenBucket', () => {
  it('starts full: a burst of rate × burst passes at once, then nothing until it refills', () => {
    const b = bucket(100, 1000, 100) // 100/s, 100 ms burst: 10
    expect(drain(b, 0)).toBe(10)
    expect(b.waitFor(1, 0)).toBe(10) // one message every 10 ms
    expect(drain(b, 10)).toBe(1)
  })

  it('lets exactly rate × time through over a long run, in integer steps (no drift)', () => {
    const b = bucket(100, 1000, 100)
    let passed = drain(b, 0)
    for (let t = 1; t <= 60_000; t++) passed += drain(b, t)
    expect(passed).toBe(10 + 6000)
  })

  it('handles fractional rates exactly (1.5/s)', () => {
    const b = bucket(1.5, 1000, 1000)
    let passed = drain(b, 0)
    expect(passed).toBe(1)
    for (let t = 1; t <= 10_000; t++) passed += drain(b, t)
    expect(passed).toBe(1 + 15)
  })

  it('always admits at least one unit, whatever the burst (1/m with 100 ms burst)', () => {
    const b = bucket(1, 60_000, 100)
    expect(drain(b, 0)).toBe(1)
    expect(b.waitFor(1, 0)).toBe(60_000)
    expect(drain(b, 59_999)).toBe(0)
    expect(drain(b, 60_000)).toBe(1)
  })

  it('a byte bucket lets a packet larger than its capacity through when full, then pays the debt back', () => {
    const b = bucket(1000, 1000, 1000, true) // 1000 B/s, capacity 1000 B
    expect(b.waitFor(5000, 0)).toBe(0)
    b.take(5000)
    // 4000 B of debt plus a full bucket for the next big packet: 5 s.
    expect(b.waitFor(5000, 0)).toBe(5000)
    expect(b.waitFor(10, 4010)).toBe(0)
  })

  it('caps at the capacity after a long idle time and never overflows', () => {
    const b = bucket(1_000_000_000, 1000, 1000, true)
    b.take(1)
    expect(b.waitFor(1, Number.MAX_SAFE_INTEGER / 2)).toBe(0)
    expect(b.credits).toBe(b.spec.capacity)
  })

  it('refuses a rate it cannot count exactly', () => {
    expect(() => new BucketSpec({ count: 1e15, perMs: 3_600_000 }, 3_600_000)).toThrow(/outside what a token bucket can count exactly/)
  })
})
