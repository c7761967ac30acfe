/**
 * Overload protection: samples event-loop lag (perf_hooks.monitorEventLoopDelay, p99 since the last
 * sample) and resident memory on one unref'd timer. While either is past its ceiling
 * (`limits.overload`), new connections are refused at accept (ConnectionLimiter); established ones
 * are left alone. Thresholds are read from the running policy at each sample, so a reload applies.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { LiveConfig } from '../config/types.js'

export class OverloadMonitor {
  private readonly policy: LiveConfig
  private histogram: IntervalHistogram | null = null
  private timer: NodeJS.Timeout | null = null
  private intervalMs = 0
  /** True while new connections should be refused. */
  overloaded = false
  /** Last samples (for logs and tests). */
  lagMs = 0
  rss = 0

  constructor(policy: LiveConfig) {
    this.policy = policy
  }

  start(): void {
    if (this.timer !== null) return
    this.sample()
    this.schedule()
  }

  private schedule(): void {
    this.intervalMs = this.policy.config.limits.overload.sampleMs
    this.timer = setInterval(onSample, this.intervalMs, this)
    this.timer.unref()
  }

  sample(): void {
    const { eventLoopLagMs, memory, sampleMs } = this.policy.config.limits.overload
    // The lag histogram wakes the loop every 10 ms: only while a lag ceiling is configured.
    if (eventLoopLagMs === null && this.histogram !== null) {
      this.histogram.disable()
      this.histogram = null
      this.lagMs = 0
    } else if (eventLoopLagMs !== null && this.histogram === null) {
      this.histogram = monitorEventLoopDelay({ resolution: 10 })
      this.histogram.enable()
    }
    const h = this.histogram
    if (h !== null) {
      this.lagMs = h.count > 0 ? h.percentile(99) / 1e6 : 0
      h.reset()
    }
    this.rss = memory === null ? 0 : process.memoryUsage.rss()
    this.overloaded = (eventLoopLagMs !== null && this.lagMs > eventLoopLagMs) || (memory !== null && this.rss > memory)
    if (this.timer !== null && sampleMs !== this.intervalMs) {
      clearInterval(this.timer)
      this.schedule()
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.histogram?.disable()
    this.histogram = null
    this.overloaded = false
  }
}

function onSample(monitor: OverloadMonitor): void {
  monitor.sample()
}
