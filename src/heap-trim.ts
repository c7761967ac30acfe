/**
 * Gives memory back once a wave of connections has gone. Moat runs without V8's memory reducer
 * (docs/tuning.md: it would pause a steadily busy proxy), so nothing else would collect the old
 * generation of an idle process: after a reconnect storm the sessions that came and went stay in
 * the heap as garbage, and the resident size stays at the storm's peak.
 *
 * Every `intervalMs` this compares the open sessions with the most open since the last collection
 * (noted at each accept): once they have fallen to half of that, by at least `minDrop`, and the
 * heap has grown by at least `minGrowthBytes` since then, it runs one full collection. That is one pause of a few tens of
 * milliseconds right after most connections left, never at packet rate.
 *
 * The collection is V8's `gc()`, exposed through the public `v8.setFlagsFromString` and `vm` APIs;
 * where that is refused, trimming is off and the proxy runs on as before.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import type { Logger } from './log/logger.js'

export interface HeapTrimOptions {
  readonly intervalMs: number
  /** Sessions that must have left since the peak (a handful closing is no wave). */
  readonly minDrop: number
  /** Heap growth since the last collection that makes one worth its pause. */
  readonly minGrowthBytes: number
}

export const HEAP_TRIM_DEFAULTS: HeapTrimOptions = { intervalMs: 10_000, minDrop: 1000, minGrowthBytes: 32 * 1024 * 1024 }

/** V8's gc(): a full collection, old generation included. */
type Collect = () => void


function exposeGc(): Collect | null {
  const own = (globalThis as { gc?: Collect }).gc
  if (typeof own === 'function') return own
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as unknown
    return typeof gc === 'function' ? (gc as Collect) : null
  } catch {
    return null
  }
}

function onTick(trim: HeapTrim): void {
  trim.check()
}

export class HeapTrim {
  private readonly sessions: () => number
  private readonly logger: Logger
  private readonly options: HeapTrimOptions
  private readonly collect: Collect | null
  private readonly timer: NodeJS.Timeout | null
  private peak = 0
  private heapAfterLast: number
  /** Collections run so far. */
  collections = 0

  constructor(sessions: () => number, logger: Logger, options: HeapTrimOptions = HEAP_TRIM_DEFAULTS) {
    this.sessions = sessions
    this.logger = logger
    this.options = options
    this.collect = exposeGc()
    this.heapAfterLast = v8.getHeapStatistics().total_heap_size
    this.timer = this.collect === null ? null : setInterval(onTick, options.intervalMs, this).unref()
  }

  get enabled(): boolean {
    return this.collect !== null
  }

  /** A session was added: `open` are open now. */
  noteOpen(open: number): void {
    if (open > this.peak) this.peak = open
  }

  check(): boolean {
    const open = this.sessions()
    if (open > this.peak) this.peak = open
    const { minDrop, minGrowthBytes } = this.options
    if (this.collect === null || this.peak - open < minDrop || open > this.peak / 2) return false
    const before = v8.getHeapStatistics().total_heap_size
    if (before - this.heapAfterLast < minGrowthBytes) return false
    const started = performance.now()
    // The second finds the first's pages swept and empty, and hands them back to the system.
    this.collect()
    this.collect()
    const ms = Math.round(performance.now() - started)
    this.collections++
    const peak = this.peak
    this.peak = open
    this.heapAfterLast = v8.getHeapStatistics().total_heap_size
    this.logger.info({ event: 'heap_trim', sessions: open, sessionsPeak: peak, heapBytesBefore: before, heapBytesAfter: this.heapAfterLast, pauseMs: ms }, 'most sessions have gone: heap collected')
    return true
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
  }
}
