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
 * Reads that gather are not enough either: a read of 16 KiB of kilobyte messages costs about the
 * same per byte whether a wait came before it, and the wait's sleep and context switches are then
 * pure cost. So waits are put on trial now and then: for a few windows the turns do not wait, and
 * Moat's own CPU per packet without waits is compared with that of the windows just before, with
 * them. Waits that cost more than TRIAL_MARGIN over none give up, with the same back-off; waits
 * that pay are tried again ever less often (every TRIAL_SPACING times longer, up to
 * MAX_WINDOWS_BEFORE_TRIAL), and a trial ends at its first window when the turns without waits
 * already cost twice as much. Only Moat's CPU is compared: what waits save the broker is not seen.
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

/** Windows without waits in a trial, and windows with waits it is compared with (the last before it). */
export const TRIAL_WINDOWS = 5
/** Windows with waits before the first trial after they went on; then TRIAL_SPACING times as many each time they pay. */
export const FIRST_WINDOWS_BEFORE_TRIAL = 10
export const TRIAL_SPACING = 4
export const MAX_WINDOWS_BEFORE_TRIAL = 1280
/** Waits whose CPU per packet is more than this share above that without them give up. */
export const TRIAL_MARGIN = 0.1

/** This process's CPU time so far, µs (user and system, every thread). */
export type CpuClock = () => number
const processCpu: CpuClock = () => {
  const { user, system } = process.cpuUsage()
  return user + system
}

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
  private readonly cpu: CpuClock
  /** Windows with waits from which the next trial starts (counted in windowsOn). */
  private windowsBeforeTrial = FIRST_WINDOWS_BEFORE_TRIAL
  /** Windows of the trial under way (turns do not wait); 0: none. */
  private trialWindows = 0
  /** CPU (µs) and packets at the start of the span being measured: the last windows with waits, then the trial. */
  private spanCpu = 0
  private spanPackets = 0
  /** CPU µs per packet of the windows with waits just before the trial. */
  private costWithWaits = 0

  /** `cpu`: for tests; by default this process's CPU time. */
  constructor(stats: Stats, settings: CoalescingConfig, cpu: CpuClock = processCpu) {
    this.stats = stats
    this.cpu = cpu
    this.configure(settings)
  }

  configure(settings: CoalescingConfig): void {
    this.waitMs = settings.waitUs / 1000
    this.threshold = Math.max(1, Math.ceil(settings.abovePerSecond * REVIEW_MS / 1000))
    if (this.waitMs === 0) this.stop()
  }

  /** True while busy turns wait. */
  get active(): boolean {
    return this.on && this.trialWindows === 0
  }

  /** True while waits are on trial: the turns do not wait, and what they cost then is measured. */
  get onTrial(): boolean {
    return this.on && this.trialWindows > 0
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
    if (this.active) {
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
      this.trialWindows = 0
      this.windowsBeforeTrial = FIRST_WINDOWS_BEFORE_TRIAL
      return
    }
    if (passed < this.threshold / 2) {
      this.on = false
      return
    }
    if (this.trialWindows > 0) return this.trialWindow(packets)
    this.windowsOn += 1
    if (this.windowsOn < 2) return
    // The waits do not gather: they only cost.
    if (passed < reads * MIN_PACKETS_PER_READ) return this.giveUp()
    const before = this.windowsBeforeTrial - this.windowsOn
    if (before === TRIAL_WINDOWS) this.startSpan(packets)
    else if (before === 0) {
      this.costWithWaits = this.spanCost(packets)
      this.startSpan(packets)
      this.trialWindows = 1
    }
  }

  /** A window of a trial (no waits) has passed: judge the waits once the trial has seen enough. */
  private trialWindow(packets: number): void {
    const without = this.spanCost(packets)
    const pay = without > this.costWithWaits * 2
    if (!pay && this.trialWindows < TRIAL_WINDOWS) {
      this.trialWindows += 1
      return
    }
    this.trialWindows = 0
    this.windowsOn = 0
    if (!pay && this.costWithWaits > without * (1 + TRIAL_MARGIN)) {
      this.stats.coalescingTrialBackoffs += 1
      return this.giveUp()
    }
    this.backoffMs = FIRST_BACKOFF_MS // they pay: a later give-up backs off from the start
    this.windowsBeforeTrial = Math.min(this.windowsBeforeTrial * TRIAL_SPACING, MAX_WINDOWS_BEFORE_TRIAL)
  }

  private startSpan(packets: number): void {
    this.spanCpu = this.cpu()
    this.spanPackets = packets
  }

  /** CPU µs per packet since startSpan. */
  private spanCost(packets: number): number {
    return (this.cpu() - this.spanCpu) / Math.max(1, packets - this.spanPackets)
  }

  /** Off, and not on again for a while. */
  private giveUp(): void {
    this.on = false
    this.notBefore = performance.now() + this.backoffMs
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS)
    this.stats.coalescingBackoffs += 1
  }

  /** The check phase of a turn that read something: sleep, so that the next turn reads more. */
  turnEnd(): void {
    this.armed = false
    if (!this.active) return
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
    this.trialWindows = 0
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
