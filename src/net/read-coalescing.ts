/**
 * `coalescing`: while packets flow fast, let them gather before Moat reads them.
 *
 * A proxy that handles each packet the moment it arrives pays for every packet: a wakeup, an epoll
 * round, a read and a write, each a few microseconds of kernel time, which on a core shared with
 * the broker are taken from the broker. NICs answer the same problem with interrupt coalescing and
 * the kernel with NAPI: under load, wait a little, then take what has gathered in one go. Moat does
 * it at the turn of its event loop. Once more than `above` packets per second pass through this
 * process (both directions, every client; 20,000/s by default), each turn of the loop that read
 * something ends with a wait of `wait` (200 µs by default): the thread sleeps (a futex wait, no
 * CPU), the broker and the clients run, and the next turn reads everything that arrived meanwhile,
 * many packets per read and per write. It stays on until the rate falls below half of `above`.
 *
 * What it costs is latency when the proxy is not busy, so below the rate no turn waits. Where reads
 * gather it pays: fewer, larger reads and writes, and less of Moat's CPU per message (the figures
 * are in bench/README.md).
 *
 * Waits must gather to be worth it. A wait is a futex sleep and two context switches; when the
 * load is many sockets each sending a packet now and then (a fleet at a steady rate), a wait
 * gathers nothing per socket and only costs CPU and latency. So while waits are on, a window whose
 * reads carried fewer than MIN_PACKETS_PER_READ packets on average turns them off, and the packet
 * rate may turn them on again only after a back-off (doubling while they keep not gathering).
 *
 * The rate is judged every 10 ms from the packet counters Stats keeps anyway; the review timer runs
 * only while packets flow (a read starts it, a window without packets stops it). The cost per read
 * is a counter and two comparisons, and one Immediate per turn of the loop while waits are on.
 */
import type { Stats } from '../stats/stats.js'

/** The `coalescing` section of the config. */
export interface CoalescingConfig {
  /** Microseconds each busy turn of the event loop waits; 0 = never wait. */
  readonly waitUs: number
  /** Packets per second through the process (both directions) from which turns wait. */
  readonly abovePerSecond: number
}

/** The packet rate is judged over windows of this length. */
export const REVIEW_MS = 10

/** While waits are on, reads must carry at least this many packets on average, or the waits stop. */
export const MIN_PACKETS_PER_READ = 8

/** After waits that did not gather, the rate may turn them on again only after this long (doubling). */
export const FIRST_BACKOFF_MS = 250
export const MAX_BACKOFF_MS = 8000

/** Without a `coalescing` section. */
export const DEFAULT_COALESCING: CoalescingConfig = { waitUs: 200, abovePerSecond: 20_000 }

/** Never notified: a wait on it always runs to its timeout. */
const sleeper = new Int32Array(new SharedArrayBuffer(4))

export class ReadCoalescing {
  private readonly stats: Stats
  private waitMs = 0
  /** Packets per review window from which turns wait. */
  private threshold = 0
  /** True while the packet rate is above the threshold (see review for the band). */
  private on = false
  /** An end-of-turn wait is scheduled for the current turn. */
  private armed = false
  private reviewer: NodeJS.Timeout | null = null
  private lastPackets = 0
  /** Reads in the current window. */
  private reads = 0
  /** Windows judged since the waits went on (the first is not judged: it began without them). */
  private windowsOn = 0
  /** After waits that did not gather: not on again before this time (performance.now() ms). */
  private notBefore = 0
  private backoffMs = FIRST_BACKOFF_MS

  constructor(stats: Stats, settings: CoalescingConfig) {
    this.stats = stats
    this.configure(settings)
  }

  configure(settings: CoalescingConfig): void {
    this.waitMs = settings.waitUs / 1000
    this.threshold = Math.max(1, Math.ceil(settings.abovePerSecond * REVIEW_MS / 1000))
    if (this.waitMs === 0) this.stop()
  }

  /** True while busy turns wait. */
  get active(): boolean {
    return this.on
  }

  /** True while the packet rate is being judged (packets flowed in the last window). */
  get reviewing(): boolean {
    return this.reviewer !== null
  }

  /** True while waits are off because they did not gather (the back-off after them). */
  get backingOff(): boolean {
    return !this.on && performance.now() < this.notBefore
  }

  /** Called on every read from a client or the broker. */
  noteRead(): void {
    this.reads += 1
    if (this.on) {
      if (!this.armed) {
        this.armed = true
        setImmediate(onTurnEnd, this)
      }
    } else if (this.reviewer === null && this.waitMs > 0) {
      this.lastPackets = packetCount(this.stats)
      this.reviewer = setInterval(onReview, REVIEW_MS, this)
      this.reviewer.unref()
    }
  }

  /**
   * Every REVIEW_MS while packets flow: on from the threshold, off again only below half of it.
   * Waiting does not change how many packets arrive, only how many are read at once, so the band
   * keeps a load near the threshold from switching every few windows (which costs more than
   * either state).
   */
  review(): void {
    const packets = packetCount(this.stats)
    const passed = packets - this.lastPackets
    this.lastPackets = packets
    const reads = this.reads
    this.reads = 0
    if (passed === 0) return this.stop()
    if (!this.on) {
      this.on = this.waitMs > 0 && passed >= this.threshold && performance.now() >= this.notBefore
      this.windowsOn = 0
      return
    }
    if (passed < this.threshold / 2) {
      this.on = false
      return
    }
    this.windowsOn += 1
    if (this.windowsOn < 2) return
    if (passed >= reads * MIN_PACKETS_PER_READ) {
      this.backoffMs = FIRST_BACKOFF_MS // they gather: a later give-up backs off from the start
      return
    }
    // The waits do not gather: they only cost. Off, and not on again for a while.
    this.on = false
    this.notBefore = performance.now() + this.backoffMs
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS)
    this.stats.coalescingBackoffs += 1
  }

  /** The check phase of a turn that read something: sleep, so that the next turn reads more. */
  turnEnd(): void {
    this.armed = false
    if (!this.on) return
    const stats = this.stats
    const start = performance.now()
    Atomics.wait(sleeper, 0, 0, this.waitMs)
    stats.coalescingWaits += 1
    stats.coalescingWaitSeconds += (performance.now() - start) / 1000
  }

  /** No packets in a window (or coalescing turned off): the next flow starts afresh, back-off included. */
  stop(): void {
    this.on = false
    this.reads = 0
    this.notBefore = 0
    this.backoffMs = FIRST_BACKOFF_MS
    if (this.reviewer !== null) clearInterval(this.reviewer)
    this.reviewer = null
  }
}

/** Packets through this process so far, both directions. */
function packetCount(stats: Stats): number {
  let n = 0
  const fromClient = stats.packetsFromClient
  const fromBroker = stats.packetsFromBroker
  for (let type = 0; type < 16; type++) n += fromClient[type]! + fromBroker[type]!
  return n
}

function onTurnEnd(coalescing: ReadCoalescing): void {
  coalescing.turnEnd()
}

function onReview(coalescing: ReadCoalescing): void {
  coalescing.review()
}
