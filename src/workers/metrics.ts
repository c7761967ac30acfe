/**
 * The primary's /metrics: every scrape asks each worker for its metrics over IPC (a worker builds
 * them from its Stats at that moment), and merges them with prom-client's aggregator: counters
 * and most gauges are summed; the policy fingerprint is shown once per distinct policy, and the
 * config generation is the lowest any worker runs. The primary adds its own series first:
 * workers running, worker restarts, the reloads it made and the files it refused (a refused file
 * never reaches a worker), and each worker's accepted connections and open sessions, labelled by worker number.
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client'
import type { MetricsSource } from '../admin/exposition.js'
import type { WorkerMetrics } from './messages.js'

/** Aggregation other than the metric's own (sum for counters and gauges). */
const aggregatorOverride: Record<string, string> = {
  moat_policy_info: 'max',
  moat_config_generation: 'min',
  moat_config_reloads_total: 'max',
}

export interface ClusterSource {
  /** Each live worker's metrics (workers that do not answer in time are left out), by worker number. */
  collect(): Promise<Array<{ worker: number; metrics: WorkerMetrics }>>
  readonly workersRunning: number
  readonly workersWanted: number
  readonly restarts: number
  /** Reloads the primary validated and sent to the workers, and files it refused. */
  readonly reloads: number
  readonly reloadFailures: number
}

/** What the admin endpoint scrapes in the primary: the workers' metrics merged, and its own. */
export class ClusterMetrics implements MetricsSource {
  private readonly source: ClusterSource
  private readonly own = new Registry()
  /** The workers' answers to the scrape in progress (read by the per-worker series). */
  private readonly perWorker: Array<{ worker: number; metrics: WorkerMetrics }> = []

  constructor(source: ClusterSource) {
    this.source = source
    const perWorker = this.perWorker
    new Gauge({
      name: 'moat_workers',
      help: 'Worker processes running (workers: N), and wanted.',
      labelNames: ['state'],
      registers: [this.own],
      collect() {
        this.set({ state: 'running' }, source.workersRunning)
        this.set({ state: 'wanted' }, source.workersWanted)
      },
    })
    new Counter({
      name: 'moat_worker_restarts_total',
      help: 'Workers that ended unexpectedly and were started again.',
      registers: [this.own],
      collect() {
        this.reset()
        this.inc(source.restarts)
      },
    })
    new Counter({
      name: 'moat_config_reloads_total',
      help: 'Config reloads (SIGHUP), by outcome; a failed reload keeps the running policy. With workers, the reloads the cluster made (the highest of the primary and any worker).',
      labelNames: ['outcome'],
      registers: [this.own],
      collect() {
        this.reset()
        this.inc({ outcome: 'success' }, source.reloads)
        this.inc({ outcome: 'failure' }, source.reloadFailures)
      },
    })
    new Counter({
      name: 'moat_worker_connections_accepted_total',
      help: 'Client connections accepted, by worker (its number, 1..N, kept across restarts; a restart starts it from 0).',
      labelNames: ['worker'],
      registers: [this.own],
      collect() {
        this.reset()
        for (const w of perWorker) this.inc({ worker: String(w.worker) }, total(w.metrics, 'moat_connections_accepted_total'))
      },
    })
    new Gauge({
      name: 'moat_worker_sessions_open',
      help: 'Client sessions open, by worker.',
      labelNames: ['worker'],
      registers: [this.own],
      collect() {
        this.reset()
        for (const w of perWorker) this.set({ worker: String(w.worker) }, total(w.metrics, 'moat_sessions_open'))
      },
    })
  }

  async getMetricsAsJSON(): Promise<WorkerMetrics> {
    const workers = await this.source.collect()
    this.perWorker.length = 0
    this.perWorker.push(...workers)
    const arrays: WorkerMetrics[] = [await this.own.getMetricsAsJSON(), ...workers.map((w) => w.metrics)]
    for (const metrics of arrays) {
      for (const metric of metrics) {
        const aggregator = aggregatorOverride[metric.name]
        if (aggregator !== undefined) (metric as { aggregator: string }).aggregator = aggregator
      }
    }
    return AggregatorRegistry.aggregate(arrays as Parameters<typeof AggregatorRegistry.aggregate>[0]).getMetricsAsJSON()
  }
}

function total(metrics: WorkerMetrics, name: string): number {
  const metric = metrics.find((m) => m.name === name)
  if (metric === undefined) return 0
  let sum = 0
  for (const v of metric.values) sum += v.value
  return sum
}
