/**
 * A line logged at most once per interval per key: the first occurrence at once, then, when more
 * came within the interval, one summary line at its end with how many (`suppressed`) and the latest
 * fields. A backend or a broker that is down logs a line per interval, not one per client; the
 * metrics count each occurrence.
 */
import type { Logger } from '../log/logger.js'

type Level = 'warn' | 'error'

/** One key's interval: open from its first line until an interval passes with nothing to summarise. */
interface Interval {
  readonly level: Level
  readonly message: string
  /** The latest occurrence's fields, for the summary. */
  fields: Record<string, unknown>
  suppressed: number
  timer: NodeJS.Timeout
}

export class ThrottledLog {
  private readonly logger: Logger
  private readonly intervalMs: number
  /** Keys are a bounded set (backend × error kind, the upstream), so this map stays small. */
  private readonly open = new Map<string, Interval>()

  constructor(logger: Logger, intervalMs = 10_000) {
    this.logger = logger
    this.intervalMs = intervalMs
  }

  /** `first`: the logger for the first line (a session's, with its bindings); summaries use the one given at construction. */
  warn(key: string, fields: Record<string, unknown>, message: string, first: Logger = this.logger): void {
    this.note('warn', key, fields, message, first)
  }

  error(key: string, fields: Record<string, unknown>, message: string, first: Logger = this.logger): void {
    this.note('error', key, fields, message, first)
  }

  /** Logs the summaries still due and stops the timers (shutdown). */
  close(): void {
    for (const interval of this.open.values()) {
      clearTimeout(interval.timer)
      if (interval.suppressed > 0) this.summarise(interval)
    }
    this.open.clear()
  }

  private note(level: Level, key: string, fields: Record<string, unknown>, message: string, first: Logger): void {
    const interval = this.open.get(key)
    if (interval !== undefined) {
      interval.suppressed++
      interval.fields = fields
      return
    }
    first[level](fields, message)
    this.open.set(key, { level, message, fields, suppressed: 0, timer: this.arm(key) })
  }

  private arm(key: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.intervalEnded(key), this.intervalMs)
    timer.unref()
    return timer
  }

  private intervalEnded(key: string): void {
    const interval = this.open.get(key)
    if (interval === undefined) return
    if (interval.suppressed === 0) {
      this.open.delete(key) // quiet for a whole interval: the next occurrence is logged at once
      return
    }
    this.summarise(interval)
    interval.suppressed = 0
    interval.timer = this.arm(key)
  }

  private summarise(interval: Interval): void {
    this.logger[interval.level]({ ...interval.fields, suppressed: interval.suppressed, intervalMs: this.intervalMs }, `${interval.message} (${interval.suppressed} more within ${this.intervalMs / 1000} s, not logged one by one)`)
  }
}
