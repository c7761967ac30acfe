/**
 * A check said "not now" (rate limit, in-flight quota): the session keeps the packet, stops reading
 * the client (TCP pushes back on it; the Framer holds the rest of the chunk), and the packet is
 * checked again at SessionState.throttleUntil. One held packet and one timer per session.
 *
 * The session counts in the moat_sessions_throttled gauge from its first wait until the client is
 * read again, so a packet held again when checked again does not count the session twice, and the
 * time it spends so is summed up (moat_throttled_seconds_total).
 */
import { nowMs } from '../limits/token-bucket.js'
import type { Stats } from '../stats/stats.js'

/** A held packet is checked again at least this often, so a reload that lifts a limit applies soon. */
const MAX_WAIT_MS = 1000

/** Checks a held frame again, as it checked it the first time (ClientFrames). */
export interface FrameDispatcher {
  dispatch(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean
}

/** Told when a wait is over (the Session). */
export interface ThrottleOwner {
  onThrottleEnd(): void
}

export class Throttle {
  private readonly owner: ThrottleOwner
  private readonly stats: Stats
  private timer: NodeJS.Timeout | null = null
  /** The held frame (a Buffer of its own) and how the Framer described it. */
  private frame: Buffer | null = null
  private type = 0
  private flags = 0
  private bodyOffset = 0
  /** Counted in the gauge; `since`: from when (nowMs clock). */
  private counted = false
  private since = 0
  /** Checking the held frame again: holding it again is the same wait, not a new one. */
  private replaying = false

  constructor(owner: ThrottleOwner, stats: Stats) {
    this.owner = owner
    this.stats = stats
  }

  get holding(): boolean {
    return this.frame !== null
  }

  /** Holds `frame` until `until` (nowMs clock): at least 1 ms, at most MAX_WAIT_MS from now. */
  hold(frame: Buffer, type: number, flags: number, bodyOffset: number, until: number): void {
    this.frame = frame
    this.type = type
    this.flags = flags
    this.bodyOffset = bodyOffset
    if (!this.counted) {
      this.counted = true
      this.stats.sessionsThrottled += 1
      this.since = nowMs()
    }
    if (!this.replaying) this.stats.throttleWaits += 1
    this.timer = setTimeout(onWaitOver, Math.min(MAX_WAIT_MS, Math.max(1, until - nowMs())), this)
  }

  /** What the wait was for may be over (a 3.1.1 client's in-flight publish ended): check again now. */
  wakeNow(): void {
    if (this.timer === null) return
    clearTimeout(this.timer)
    this.timer = setTimeout(onWaitOver, 0, this)
  }

  waitOver(): void {
    this.timer = null
    this.owner.onThrottleEnd()
  }

  /** Checks the held frame again through `frames`; returns what its dispatch returned (false: held again, or refused). */
  replay(frames: FrameDispatcher): boolean {
    const frame = this.frame!
    this.frame = null
    this.replaying = true
    const goOn = frames.dispatch(frame, 0, frame.length, this.type, this.flags, this.bodyOffset)
    this.replaying = false
    return goOn
  }

  /** After a replay and what it let through: true when no frame is held any more (the gauge stops counting the session). */
  settle(): boolean {
    if (this.frame !== null) return false
    this.uncount()
    return true
  }

  /** The session closes: no wait, no held frame, no count. */
  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.frame = null
    this.uncount()
  }

  private uncount(): void {
    if (!this.counted) return
    this.counted = false
    this.stats.sessionsThrottled -= 1
    this.stats.throttledSeconds += (nowMs() - this.since) / 1000
  }
}

function onWaitOver(throttle: Throttle): void {
  throttle.waitOver()
}
