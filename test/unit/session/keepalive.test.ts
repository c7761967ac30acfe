import { describe, expect, it, vi } from 'vitest'
import type { CloseReason } from '../../../src/stats/reasons.js'
import { KeepaliveWatch } from '../../../src/session/keepalive.js'
import { Phase } from '../../../src/session/phase.js'
import type { Session } from '../../../src/session/session.js'
import { useFakeClock } from '../../helpers/session.js'

/** The parts of a session the watch reads and acts on. */
class FakeSession {
  phase: Phase = Phase.Open
  flow = { readingClient: true }
  state = { keepalive: 10, version: 5 }
  closed: Array<[CloseReason, Buffer | null]> = []
  audit = { log: { warn: () => {} } }
  close(why: CloseReason, answer: Buffer | null): void {
    this.closed.push([why, answer])
    this.phase = Phase.Closing
  }
}

function watch(): { w: KeepaliveWatch; session: FakeSession } {
  const session = new FakeSession()
  return { w: new KeepaliveWatch(session as unknown as Session), session }
}

describe('KeepaliveWatch', () => {
  useFakeClock()

  it("closes a silent client 10 s after 1.5 times a keepalive the broker knows, bare: the broker's own timeout should have come first", () => {
    const { w, session } = watch()
    w.start(10, false)
    vi.advanceTimersByTime(24_999)
    expect(session.closed).toEqual([])
    vi.advanceTimersByTime(1)
    expect(session.closed).toEqual([['idle_timeout', null]])
  })

  it('closes at 1.5 times a keepalive Moat lowered, telling a 5.0 client why (0x8D)', () => {
    const { w, session } = watch()
    w.start(10, true)
    vi.advanceTimersByTime(15_000)
    expect(session.closed).toEqual([['idle_timeout', Buffer.from([0xe0, 0x01, 0x8d])]])
  })

  it('a 3.1.1 client is closed bare even under a keepalive Moat lowered', () => {
    const { w, session } = watch()
    session.state.version = 4
    w.start(10, true)
    vi.advanceTimersByTime(15_000)
    expect(session.closed).toEqual([['idle_timeout', null]])
  })

  it('counts the silence from the last byte heard', () => {
    const { w, session } = watch()
    w.start(10, true)
    vi.advanceTimersByTime(10_000)
    w.heard()
    vi.advanceTimersByTime(10_000)
    expect(session.closed).toEqual([])
    vi.advanceTimersByTime(5_000)
    expect(session.closed).toHaveLength(1)
  })

  it('does not blame the client for silence while Moat is not reading it', () => {
    const { w, session } = watch()
    w.start(10, true)
    session.flow.readingClient = false
    vi.advanceTimersByTime(60_000)
    expect(session.closed).toEqual([])
    session.flow.readingClient = true
    w.heard() // read again: the silence starts now
    vi.advanceTimersByTime(14_999)
    expect(session.closed).toEqual([])
    vi.advanceTimersByTime(15_001)
    expect(session.closed).toHaveLength(1)
  })

  it('watches nothing before start, and nothing once stopped', () => {
    const { w, session } = watch()
    w.heard()
    vi.advanceTimersByTime(100_000)
    w.start(1, true)
    w.stop()
    vi.advanceTimersByTime(100_000)
    expect(session.closed).toEqual([])
  })
})
