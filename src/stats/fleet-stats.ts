/**
 * Counters of the shared store, read by metrics/registry.ts at scrape time. Label values
 * are bounded: the store operations below and the two transitions.
 */
export const storeOps = ['acquire', 'release', 'take', 'count', 'add_ban', 'remove_ban', 'bans_refresh', 'heartbeat', 'resync', 'rate_leases'] as const
export type StoreOp = (typeof storeOps)[number]
export const storeOpIndex: Readonly<Record<StoreOp, number>> = Object.fromEntries(storeOps.map((op, i) => [op, i])) as Record<StoreOp, number>

export class ClusterStats {
  /** Calls, failed calls and seconds spent, by operation (index into storeOps). */
  readonly calls = new Float64Array(storeOps.length)
  readonly errors = new Float64Array(storeOps.length)
  readonly seconds = new Float64Array(storeOps.length)
  /** Transitions of the store: [to down, to up]. */
  readonly transitions = new Float64Array(2)
  /** Connection-time decisions taken from local limits because the store was down (`onRedisDown: local`). */
  localFallbacks = 0
  /** Times the per-user rates fell back to per-process buckets (Redis or the workers' primary not answering; fleet/lease-loop.ts). */
  rateLeaseFallbacks = 0
  /** Sessions a new ban closed. */
  sessionsBanned = 0
}
