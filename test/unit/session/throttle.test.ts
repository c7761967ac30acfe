import { describe, expect, it, vi } from 'vitest'
import { nowMs } from '../../../src/limits/token-bucket.js'
import { Stats } from '../../../src/stats/stats.js'
import { Throttle, type FrameDispatcher } from '../../../src/session/throttle.js'
import { useFakeClock } from '../../helpers/session.js'

/** Counts the owner's wake-ups; dispatches with a verdict the test sets, recording what it was given. */
class Owner implements FrameDispatcher {
  woken = 0
  dispatched: Array<[string, number, number, number, number, number]> = []
  /** What dispatch does: go on, or hold the frame again through `throttle`. */
  next: 'forward' | 'hold' = 'forward'
  throttle!: Throttle

  onThrottleEnd(): void {
    this.woken += 1
  }

  dispatch(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    this.dispatched.push([buf.toString('latin1'), start, end, type, flags, bodyOffset])
    if (this.next === 'forward') return true
    this.throttle.hold(buf, type, flags, bodyOffset, nowMs() + 50)
    return false
  }
}

function throttle(): { t: Throttle; owner: Owner; stats: Stats } {
  const owner = new Owner()
  const stats = new Stats()
  const t = new Throttle(owner, stats)
  owner.throttle = t
  return { t, owner, stats }
}

describe('Throttle', () => {
  useFakeClock()

  it('wakes its owner when the check said the packet may go, counting one wait and one throttled session', () => {
    const { t, owner, stats } = throttle()
    t.hold(Buffer.from('frame'), 3, 2, 2, nowMs() + 30)
    expect(t.holding).toBe(true)
    expect(stats.sessionsThrottled).toBe(1)
    expect(stats.throttleWaits).toBe(1)
    vi.advanceTimersByTime(29)
    expect(owner.woken).toBe(0)
    vi.advanceTimersByTime(1)
    expect(owner.woken).toBe(1)
  })

  it('waits at least 1 ms and at most a second, so a reload that lifts the limit applies soon', () => {
    const { t, owner } = throttle()
    t.hold(Buffer.from('a'), 3, 0, 2, nowMs() - 100)
    vi.advanceTimersByTime(1)
    expect(owner.woken).toBe(1)
    t.hold(Buffer.from('b'), 3, 0, 2, nowMs() + 60_000)
    vi.advanceTimersByTime(999)
    expect(owner.woken).toBe(1)
    vi.advanceTimersByTime(1)
    expect(owner.woken).toBe(2)
  })

  it('replays the held frame as the framer described it, and stops counting the session once nothing is held', () => {
    const { t, owner, stats } = throttle()
    t.hold(Buffer.from('frame'), 8, 2, 3, nowMs() + 10)
    vi.advanceTimersByTime(10) // the wait is over
    vi.advanceTimersByTime(250) // the owner replays a while later
    expect(t.replay(owner)).toBe(true)
    expect(owner.dispatched).toEqual([['frame', 0, 5, 8, 2, 3]])
    expect(t.holding).toBe(false)
    expect(stats.sessionsThrottled).toBe(1) // until the session settles
    expect(t.settle()).toBe(true)
    expect(stats.sessionsThrottled).toBe(0)
    expect(stats.throttledSeconds).toBeCloseTo(0.26, 5)
  })

  it('a frame held again when replayed is the same wait: no new wait counted, the session counted once', () => {
    const { t, owner, stats } = throttle()
    t.hold(Buffer.from('frame'), 3, 0, 2, nowMs() + 10)
    vi.advanceTimersByTime(10)
    owner.next = 'hold'
    expect(t.replay(owner)).toBe(false)
    expect(t.settle()).toBe(false)
    expect(stats.throttleWaits).toBe(1)
    expect(stats.sessionsThrottled).toBe(1)
    vi.advanceTimersByTime(50)
    expect(owner.woken).toBe(2)
    // A frame behind it (not a replay) held while the session still counts: a new wait, the same session.
    t.hold(Buffer.from('next'), 3, 0, 2, nowMs() + 10)
    expect(stats.throttleWaits).toBe(2)
    expect(stats.sessionsThrottled).toBe(1)
  })

  it('wakes at once when what it waited for may be over, and not when it was not waiting', () => {
    const { t, owner } = throttle()
    t.wakeNow()
    vi.advanceTimersByTime(0)
    expect(owner.woken).toBe(0)
    t.hold(Buffer.from('frame'), 3, 0, 2, nowMs() + 500)
    t.wakeNow()
    vi.advanceTimersByTime(0)
    expect(owner.woken).toBe(1)
    vi.advanceTimersByTime(1000)
    expect(owner.woken).toBe(1)
  })

  it('cancel drops the frame and the wait, and ends the count once', () => {
    const { t, owner, stats } = throttle()
    t.hold(Buffer.from('frame'), 3, 0, 2, nowMs() + 20)
    t.cancel()
    t.cancel()
    expect(t.holding).toBe(false)
    expect(stats.sessionsThrottled).toBe(0)
    vi.advanceTimersByTime(2000)
    expect(owner.woken).toBe(0)
    expect(t.settle()).toBe(true)
    expect(stats.sessionsThrottled).toBe(0)
  })
})
