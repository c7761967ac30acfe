import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Stats } from '../../../src/stats/stats.js'
import {
  DEFAULT_COALESCING, FIRST_BACKOFF_MS, FIRST_WINDOWS_BEFORE_TRIAL, MAX_BACKOFF_MS, MAX_WINDOWS_BEFORE_TRIAL, MIN_PACKETS_PER_READ,
  ReadCoalescing, TRIAL_MARGIN, TRIAL_SPACING, TRIAL_WINDOWS,
} from '../../../src/net/read-coalescing.js'

/** One turn of the event loop: the reads happen, then the check phase (where the wait runs). */
async function turn(coalescing: ReadCoalescing, reads: number): Promise<void> {
  for (let i = 0; i < reads; i++) coalescing.noteRead()
  await new Promise<void>((resolve) => setImmediate(resolve))
}

describe('ReadCoalescing', () => {
  const made: ReadCoalescing[] = []
  // The review timer is faked: every review is the test's own call, never a real 10 ms window that
  // a loaded machine lets pass between two steps (it would find no packets and stop the waits).
  beforeEach(() => { vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }) })
  afterEach(() => {
    for (const c of made.splice(0)) c.stop()
    vi.useRealTimers()
  })
  function coalescing(stats: Stats, waitUs: number, abovePerSecond: number, cpu?: () => number): ReadCoalescing {
    const c = new ReadCoalescing(stats, { waitUs, abovePerSecond }, cpu)
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
    for (let i = 1; i < FIRST_WINDOWS_BEFORE_TRIAL; i++) expect(windowOf(c, stats, 400, 400 / MIN_PACKETS_PER_READ)).toBe(true)
    expect(stats.coalescingBackoffs).toBe(0)
  })

  /**
   * Waits on trial. `cpu` is the fake CPU clock the coalescing reads: each window adds `withWaits`
   * µs per packet while the turns wait, `without` while they do not (a trial). Returns the trial's
   * windows, whether the waits went on after it, and `window` to go on with the same clock.
   */
  function untilTrialEnds(withWaits: number, without: number, stats = new Stats()): { c: ReadCoalescing; trialWindows: number; active: boolean; window: (packets: number) => boolean } {
    let cpu = 0
    const c = coalescing(stats, 200, 1000, () => cpu)
    const window = (packets: number): boolean => {
      cpu += packets * (c.active ? withWaits : without)
      return windowOf(c, stats, packets, packets / MIN_PACKETS_PER_READ)
    }
    expect(window(400)).toBe(true)
    for (let i = 1; i < FIRST_WINDOWS_BEFORE_TRIAL; i++) expect(window(400)).toBe(true)
    window(400)
    expect(c.onTrial).toBe(true) // the windows without waits begin
    let trialWindows = 0
    while (c.onTrial && trialWindows <= TRIAL_WINDOWS) {
      trialWindows += 1
      window(400)
    }
    return { c, trialWindows, active: c.active, window }
  }

  it('turns do not wait during a trial', async () => {
    const stats = new Stats()
    const { c } = untilTrialEnds(1, 1, stats)
    expect(c.onTrial).toBe(false)
    // Bring the next trial on, and check that its turns do not sleep.
    for (let i = 1; i <= FIRST_WINDOWS_BEFORE_TRIAL * TRIAL_SPACING && !c.onTrial; i++) windowOf(c, stats, 400, 50)
    expect(c.onTrial).toBe(true)
    const waits = stats.coalescingWaits
    await turn(c, 3)
    expect(stats.coalescingWaits).toBe(waits)
  })

  it(`gives the waits up, with the back-off, when they cost more than ${TRIAL_MARGIN * 100} % above no waits per packet`, () => {
    const stats = new Stats()
    const { c, trialWindows, active } = untilTrialEnds(1.2, 1, stats) // a TLS burst of kilobyte messages
    expect(trialWindows).toBe(TRIAL_WINDOWS)
    expect(active).toBe(false)
    expect(c.onTrial).toBe(false)
    expect(stats.coalescingBackoffs).toBe(1)
    expect(stats.coalescingTrialBackoffs).toBe(1)
    expect(c.backingOff).toBe(true)
    expect(windowOf(c, stats, 400, 50)).toBe(false) // above the rate, yet off during the back-off
  })

  it('keeps waits that cost no more than the margin, and tries them again after TRIAL_SPACING times as long', () => {
    const stats = new Stats()
    const { c, trialWindows, active } = untilTrialEnds(1 + TRIAL_MARGIN / 2, 1, stats)
    expect(trialWindows).toBe(TRIAL_WINDOWS)
    expect(active).toBe(true)
    expect(stats.coalescingBackoffs).toBe(0)
    let windows = 0
    while (!c.onTrial && windows < MAX_WINDOWS_BEFORE_TRIAL * 2) {
      windows += 1
      windowOf(c, stats, 400, 50)
    }
    expect(windows).toBe(FIRST_WINDOWS_BEFORE_TRIAL * TRIAL_SPACING)
  })

  it('ends a trial at its first window when the turns without waits cost twice as much (a burst of small messages)', () => {
    const stats = new Stats()
    const { c, trialWindows, active, window } = untilTrialEnds(1, 5, stats)
    expect(trialWindows).toBe(1)
    expect(active).toBe(true)
    expect(stats.coalescingBackoffs).toBe(0)
    // Waits that keep paying are tried ever less often, up to the cap.
    let spacing = FIRST_WINDOWS_BEFORE_TRIAL
    for (let trial = 0; trial < 6; trial++) {
      spacing = Math.min(spacing * TRIAL_SPACING, MAX_WINDOWS_BEFORE_TRIAL)
      let windows = 0
      while (!c.onTrial && windows < MAX_WINDOWS_BEFORE_TRIAL * 2) {
        windows += 1
        window(400)
      }
      expect(windows).toBe(spacing)
      expect(window(400)).toBe(true) // one window of the trial, and the waits are back
    }
    expect(spacing).toBe(MAX_WINDOWS_BEFORE_TRIAL)
  })

  it('turns the waits off when reads do not gather behind them (a steady load of many sockets), and backs off', () => {
    const stats = new Stats()
    const c = coalescing(stats, 200, 1000)
    expect(windowOf(c, stats, 400, 2)).toBe(true)
    // The first window with waits on is not judged: it began without them.
    expect(windowOf(c, stats, 400, 200)).toBe(true)
    expect(windowOf(c, stats, 400, 200)).toBe(false) // 2 packets per read: the waits only cost
    expect(stats.coalescingBackoffs).toBe(1)
    expect(stats.coalescingTrialBackoffs).toBe(0)
    expect(c.backingOff).toBe(true)
    // Above the rate, yet off during the back-off.
    for (let i = 0; i < 5; i++) expect(windowOf(c, stats, 400, 200)).toBe(false)
  })

  it('tries again after the back-off, and doubles it while the waits keep not gathering, up to its cap', () => {
    // Only the clock is faked (the review timer is real here, and never fires: this test never
    // yields; a faked one would fire as the clock is advanced).
    vi.useRealTimers()
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

  it('a pause in the traffic resets the back-off', () => {
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
