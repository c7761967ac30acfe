import { afterEach, describe, expect, it, vi } from 'vitest'
import { Stats } from '../../../src/stats/stats.js'
import { DEFAULT_COALESCING, FIRST_BACKOFF_MS, MAX_BACKOFF_MS, MIN_PACKETS_PER_READ, ReadCoalescing } from '../../../src/net/read-coalescing.js'

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

  /** A review window with `packets` packets carried by `reads` reads; returns whether waits are on after it. */
  function windowOf(c: ReadCoalescing, stats: Stats, packets: number, reads: number): boolean {
    for (let i = 0; i < reads; i++) c.noteRead()
    stats.packetsFromClient[3]! += packets
    c.review()
    return c.active
  }

  it(`keeps the waits on while reads carry at least ${MIN_PACKETS_PER_READ} packets each (a burst)`, () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000)
    expect(windowOf(c, stats, 400, 2)).toBe(true)
    for (let i = 0; i < 20; i++) expect(windowOf(c, stats, 400, 400 / MIN_PACKETS_PER_READ)).toBe(true)
    expect(stats.coalescingBackoffs).toBe(0)
  })

  it('turns the waits off when reads do not gather behind them (a steady load of many sockets), and backs off', () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000)
    expect(windowOf(c, stats, 400, 2)).toBe(true)
    // The first window with waits on is not judged: it began without them.
    expect(windowOf(c, stats, 400, 200)).toBe(true)
    expect(windowOf(c, stats, 400, 200)).toBe(false) // 2 packets per read: the waits only cost
    expect(stats.coalescingBackoffs).toBe(1)
    expect(c.backingOff).toBe(true)
    // Above the rate, yet off during the back-off.
    for (let i = 0; i < 5; i++) expect(windowOf(c, stats, 400, 200)).toBe(false)
  })

  it('tries again after the back-off, and doubles it while the waits keep not gathering, up to its cap', () => {
    // Only the clock is faked (the review timer stays real, and never fires: this test never yields).
    vi.useFakeTimers({ toFake: ['performance'] })
    try {
      const stats = new Stats()
      const c = coalescing(stats, 200, 1000)
      windowOf(c, stats, 400, 2)
      let expected = FIRST_BACKOFF_MS
      for (let round = 0; round < 8; round++) {
        windowOf(c, stats, 400, 200) // first window with waits: not judged
        expect(windowOf(c, stats, 400, 200)).toBe(false) // they do not gather
        vi.advanceTimersByTime(expected - 1)
        expect(windowOf(c, stats, 400, 2)).toBe(false) // still backing off
        vi.advanceTimersByTime(1)
        expect(windowOf(c, stats, 400, 2)).toBe(true) // the rate may turn them on again
        expected = Math.min(expected * 2, MAX_BACKOFF_MS)
      }
      expect(expected).toBe(MAX_BACKOFF_MS) // 250, 500, ... 8000: the cap was reached
      expect(stats.coalescingBackoffs).toBe(8)
    } finally {
      vi.useRealTimers()
    }
  })

  it('a window that gathers resets the back-off; a pause in the traffic does too', () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000)
    windowOf(c, stats, 400, 2)
    windowOf(c, stats, 400, 200)
    expect(windowOf(c, stats, 400, 200)).toBe(false)
    expect(c.backingOff).toBe(true)
    c.review() // a window without packets: the flow has stopped
    expect(c.backingOff).toBe(false)
    expect(windowOf(c, stats, 400, 2)).toBe(true)
  })
})
