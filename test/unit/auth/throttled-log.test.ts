import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ThrottledLog } from '../../../src/auth/throttled-log.js'

function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write(chunk: Buffer, _e, done) { for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>); done() } })
  return { logger: pino({ level: 'info' }, sink), lines }
}

describe('ThrottledLog', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('logs the first at once, then one summary per interval with the count and the latest fields; quiet for an interval, the next is logged at once', () => {
    const { logger, lines } = capture()
    const log = new ThrottledLog(logger, 1000)
    for (let n = 0; n < 30; n++) log.error('k', { event: 'e', n }, 'down')
    expect(lines).toEqual([expect.objectContaining({ level: 50, event: 'e', n: 0, msg: 'down' })])
    vi.advanceTimersByTime(1000)
    expect(lines).toHaveLength(2)
    expect(lines[1]).toMatchObject({ level: 50, event: 'e', n: 29, suppressed: 29, intervalMs: 1000 })
    log.error('k', { event: 'e', n: 30 }, 'down') // within the next interval: summed up at its end
    vi.advanceTimersByTime(1000)
    expect(lines[2]).toMatchObject({ n: 30, suppressed: 1 })
    vi.advanceTimersByTime(1000) // an interval with nothing: no line, the interval closes
    expect(lines).toHaveLength(3)
    log.warn('k', { event: 'e', n: 31 }, 'down again')
    expect(lines[3]).toMatchObject({ level: 40, n: 31, msg: 'down again' })
    expect(lines[3]!.suppressed).toBeUndefined()
  })

  it('keys are counted apart; the first line may go to another logger (a session\'s); close() logs the summaries due', () => {
    const { logger, lines } = capture()
    const session = capture()
    const log = new ThrottledLog(logger, 10_000)
    log.warn('a', { k: 'a' }, 'a failing', session.logger)
    log.warn('b', { k: 'b' }, 'b failing')
    log.warn('a', { k: 'a' }, 'a failing', session.logger)
    expect(session.lines).toEqual([expect.objectContaining({ k: 'a' })])
    expect(lines).toEqual([expect.objectContaining({ k: 'b' })])
    log.close()
    expect(lines).toHaveLength(2)
    expect(lines[1]).toMatchObject({ k: 'a', suppressed: 1 })
    vi.advanceTimersByTime(20_000)
    expect(lines).toHaveLength(2)
  })
})
