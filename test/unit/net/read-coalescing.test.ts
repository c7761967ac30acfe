import { afterEach, describe, expect, it } from 'vitest'
import { Stats } from '../../../src/metrics/stats.js'
import { DEFAULT_COALESCING, ReadCoalescing } from '../../../src/net/read-coalescing.js'

/** One turn of the event loop: the reads happen, then the check phase (where the wait runs). */
async function turn(coalescing: ReadCoalescing, reads: number): Promise<void> {
  for (let i = 0; i < reads; i++) coalescing.noteRead()
  await new Promise<void>((resolve) => setImmediate(resolve))
}

describe('ReadCoalescing', () => {
  const made: ReadCoalescing[] = []
  afterEach(() => { for (const c of made.splice(0)) c.stop() })
  function coalescing(stats: Stats, waitUs: number, abovePerSecond: number): ReadCoalescing {
    const c = new ReadCoalescing(stats, { waitUs, abovePerSecond })
    made.push(c)
    return c
  }

  it('waits at the end of a turn that read something only while the packet rate is above the threshold', async () => {
    const stats = new Stats()
    const c = coalescing(stats, 2000, 1000) // 2 ms waits from 1,000 packets/s: 10 per 10 ms window
    await turn(c, 3) // the first read starts the review timer; nothing waits yet
    expect(c.active).toBe(false)
    stats.packetsFromClient[3]! += 6
    stats.packetsFromBroker[3]! += 6 // 12 packets in the window, both directions counted
    c.review()
    expect(c.active).toBe(true)
    const before = performance.now()
    await turn(c, 5) // five reads, one wait
    expect(stats.coalescingWaits).toBe(1)
    expect(performance.now() - before).toBeGreaterThanOrEqual(2)
    expect(stats.coalescingWaitSeconds).toBeGreaterThanOrEqual(0.002)
    await turn(c, 0) // a turn without reads does not wait
    expect(stats.coalescingWaits).toBe(1)

    stats.packetsFromClient[3]! += 4 // 4 in the next window: below half the threshold
    c.review()
    expect(c.active).toBe(false)
    await turn(c, 5)
    expect(stats.coalescingWaits).toBe(1)
  })

  it('judges the rate only while packets flow: a window without packets stops it, the next read starts it', () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000)
    expect(c.reviewing).toBe(false) // no timer while nothing is read
    c.noteRead()
    expect(c.reviewing).toBe(true)
    stats.packetsFromClient[3]! += 50
    c.review()
    expect(c.active).toBe(true)
    c.review() // nothing passed in this window
    expect(c.active).toBe(false)
    expect(c.reviewing).toBe(false)
    c.noteRead()
    expect(c.reviewing).toBe(true)
  })

  it('never waits with wait 0, whatever the rate; a reconfigure turns it on and off', async () => {
    const stats = new Stats()
    const c = coalescing(stats, 0, 1)
    c.noteRead()
    stats.packetsFromClient[3]! += 1000
    c.review()
    c.noteRead()
    await turn(c, 1)
    expect(stats.coalescingWaits).toBe(0)

    c.configure({ waitUs: 100, abovePerSecond: 1 })
    c.noteRead()
    stats.packetsFromClient[3]! += 1000
    c.review()
    await turn(c, 1)
    expect(stats.coalescingWaits).toBe(1)

    c.configure({ waitUs: 0, abovePerSecond: 1 })
    expect(c.active).toBe(false)
    await turn(c, 1)
    expect(stats.coalescingWaits).toBe(1)
  })

  it('defaults to 200 µs from 20,000 packets per second', () => {
    expect(DEFAULT_COALESCING).toEqual({ waitUs: 200, abovePerSecond: 20_000 })
  })

  it('once on, stays on until the rate falls below half of the threshold', () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000) // 10 packets per window switch it on
    c.noteRead()
    const window = (packets: number): boolean => {
      stats.packetsFromClient[3]! += packets
      c.review()
      return c.active
    }
    expect(window(9)).toBe(false)
    expect(window(10)).toBe(true)
    expect(window(5)).toBe(true) // half the threshold: still on
    expect(window(4)).toBe(false)
    expect(window(9)).toBe(false) // off again: the full threshold to switch on
    expect(window(12)).toBe(true)
  })
})
