/**
 * The primary's fleet buckets (limits/fleet-buckets.ts) on a simulated clock: the same cases as the
 * Lua script in Redis (test/helpers/lease-cases.ts), then what only the JS buckets have: the cap
 * on their number and the sweep of full ones.
 */
import { describe, expect, it } from 'vitest'
import { FleetBuckets } from '../../../src/limits/fleet-buckets.js'
import { leaseCases } from '../../helpers/lease-cases.js'

describe('FleetBuckets, the cases of the Lua script', () => {
  for (const c of leaseCases) {
    it(c.name, () => {
      const buckets = new FleetBuckets(100)
      let now = 5000
      for (const step of c.steps) {
        now += step.waitMs ?? 0
        expect(buckets.apply('m:alice', c.capacity, c.refill, step.debt, step.delta, now)).toBe(step.grant)
        expect(buckets.tokens('m:alice', c.capacity, c.refill, now)).toBe(step.tokens)
      }
    })
  }
})

describe('FleetBuckets, bounded', () => {
  it('drops a bucket once it would be full again (the sweep), keeps the others', () => {
    const buckets = new FleetBuckets(100)
    buckets.apply('m:slow', 1000, 0.001, 500, 0, 0) // full again in 500,000 ms
    buckets.apply('m:fast', 1000, 1, 500, 0, 0) // full again in 500 ms
    buckets.sweep(499)
    expect(buckets.size).toBe(2)
    buckets.sweep(500)
    expect(buckets.size).toBe(1)
    expect(buckets.tokens('m:fast', 1000, 1, 500)).toBeNull()
    expect(buckets.tokens('m:slow', 1000, 0.001, 500)).toBe(500.5)
  })

  it('past its cap drops the bucket updated longest ago, and counts it when it was not full', () => {
    const buckets = new FleetBuckets(3)
    for (let i = 0; i < 3; i++) buckets.apply(`m:u${i}`, 1000, 0.001, 100, 0, i)
    buckets.apply('m:u0', 1000, 0.001, 100, 0, 10) // u0 updated: u1 is now the oldest
    buckets.apply('m:u3', 1000, 0.001, 100, 0, 11)
    expect(buckets.size).toBe(3)
    expect(buckets.tokens('m:u1', 1000, 0.001, 11)).toBeNull()
    expect(buckets.tokens('m:u0', 1000, 0.001, 10)).toBe(800)
    expect(buckets.evicted).toBe(1)
    // Thousands of users leasing once each: still 3 buckets.
    for (let i = 0; i < 5000; i++) buckets.apply(`m:many${i}`, 1000, 0.001, 1, 0, 20)
    expect(buckets.size).toBe(3)
  })

  it('a full bucket keeps no entry', () => {
    const buckets = new FleetBuckets(3)
    expect(buckets.apply('m:idle', 1000, 0.001, 0, -10, 0)).toBe(-10)
    expect(buckets.size).toBe(0)
  })
})
