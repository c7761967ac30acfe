/**
 * Shared-store metrics, read from ClusterStats and the Fleet at scrape time. Labels are
 * bounded: the store operations (stats/fleet-stats.ts) and the two transitions.
 *
 *   moat_cluster_store_up                          1 while the store answers (always 1 in process)
 *   moat_cluster_store_transitions_total{to}       to="down" | "up"
 *   moat_cluster_store_calls_total{op}             store calls, by operation
 *   moat_cluster_store_errors_total{op}            failed store calls (unreachable, timeout)
 *   moat_cluster_store_call_seconds_total{op}      time spent in store calls (÷ calls = mean latency)
 *   moat_cluster_local_fallbacks_total             CONNECTs decided by local limits while the store was down
 *   moat_cluster_rate_lease_fallbacks_total        times per-user rates fell back to per-process buckets
 *   moat_cluster_bans                              bans in the replica (every kind)
 *   moat_cluster_sessions_banned_total             open sessions a new ban closed
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Fleet } from '../fleet/fleet.js'
import { storeOps, type ClusterStats } from '../stats/fleet-stats.js'

/** Every operation, zeros included (10 bounded series): a dashboard shows 0, not "no data", in process. */
function byOp(counter: Counter<string>, values: Float64Array): void {
  counter.reset()
  storeOps.forEach((op, i) => counter.inc({ op }, values[i]!))
}

export function registerClusterMetrics(register: Registry, stats: ClusterStats, fleet: Fleet): void {
  new Gauge({
    name: 'moat_cluster_store_up',
    help: 'Whether the store of fleet-wide limits and bans answers (1) or not (0); always 1 with the in-process store.',
    registers: [register],
    collect() {
      this.set(fleet.store.up ? 1 : 0)
    },
  })
  new Counter({
    name: 'moat_cluster_store_transitions_total',
    help: 'Times the shared store went down or came back (each is also logged).',
    labelNames: ['to'],
    registers: [register],
    collect() {
      this.reset()
      this.inc({ to: 'down' }, stats.transitions[0]!)
      this.inc({ to: 'up' }, stats.transitions[1]!)
    },
  })
  new Counter({
    name: 'moat_cluster_store_calls_total',
    help: 'Calls to the shared store, by operation.',
    labelNames: ['op'],
    registers: [register],
    collect() {
      byOp(this, stats.calls)
    },
  })
  new Counter({
    name: 'moat_cluster_store_errors_total',
    help: 'Failed calls to the shared store (unreachable, timed out), by operation.',
    labelNames: ['op'],
    registers: [register],
    collect() {
      byOp(this, stats.errors)
    },
  })
  new Counter({
    name: 'moat_cluster_store_call_seconds_total',
    help: 'Seconds spent in shared-store calls, by operation (divide by moat_cluster_store_calls_total for the mean latency).',
    labelNames: ['op'],
    registers: [register],
    collect() {
      byOp(this, stats.seconds)
    },
  })
  new Counter({
    name: 'moat_cluster_local_fallbacks_total',
    help: 'CONNECTs admitted on local limits only because the shared store was down (onRedisDown.connections: local).',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.localFallbacks)
    },
  })
  new Counter({
    name: 'moat_cluster_rate_lease_fallbacks_total',
    help: 'Times the per-user rates (limits.perUsername) fell back to per-process buckets because Redis, or the primary of workers: N, did not answer (each is also logged).',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.rateLeaseFallbacks)
    },
  })
  new Gauge({
    name: 'moat_cluster_bans',
    help: 'Bans in force (address, CIDR, user name, client id), from the local replica.',
    registers: [register],
    collect() {
      this.set(fleet.banCount)
    },
  })
  new Counter({
    name: 'moat_cluster_sessions_banned_total',
    help: 'Open sessions closed because a new ban matched them.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.sessionsBanned)
    },
  })
}
