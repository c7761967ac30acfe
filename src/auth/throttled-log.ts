/**
 * A warning logged at most once per interval per key, with the number of occurrences it stands
 * for: a backend that is down logs one line per interval, not one per client (the metric counts each).
 */
import type { Logger } from '../log/logger.js'

export class ThrottledLog {
  private readonly logger: Logger
  private readonly intervalMs: number
  private readonly last = new Map<string, { at: number; suppressed: number }>()

  constructor(logger: Logger, intervalMs = 10_000) {
    this.logger = logger
    this.intervalMs = intervalMs
  }

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    const entry = this.last.get(key)
    if (entry !== undefined && now - entry.at < this.intervalMs) {
      entry.suppressed++
      return
    }
    // Keys are a bounded set (backend × error kind), so this map stays small.
    this.last.set(key, { at: now, suppressed: 0 })
    this.logger.warn({ ...fields, ...(entry !== undefined && entry.suppressed > 0 ? { suppressed: entry.suppressed } : {}) }, message)
  }
}
