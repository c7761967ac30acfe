/**
 * The fleet buckets of per-user rates kept in process: what the cluster primary of `workers: N`
 * without Redis answers its workers' lease renewals with (workers/lease-host.ts). The arithmetic is
 * the Lua script `LEASE` of fleet/redis-budget-leases.ts, call for call, so a worker leases from
 * its primary exactly as an instance leases from Redis: per key, refill since the last update
 * (capped at the capacity), charge the debt (even below zero), then grant up to what the bucket
 * holds or take back a return; a bucket that is full again is deleted. Redis's own roundings are
 * kept: the tokens stored rounded to a whole credit, the grant answered truncated.
 *
 * Bounded: at most `maxEntries` buckets. A bucket is dropped once it would be full (as the script's
 * key expires: `sweep`); past the cap the bucket updated longest ago is dropped first. A dropped
 * bucket that was not full starts full again at its next call: that user may get up to one fleet
 * capacity more, once; nothing grows past the cap whatever the clients do.
 */

interface FleetBucket {
  tokens: number
  /** Last update, ms on the caller's clock. */
  at: number
  /** When it is full again (and may be dropped). */
  fullAt: number
}

export class FleetBuckets {
  /** In order of last update, oldest first (a Map keeps insertion order; updating re-inserts). */
  private readonly buckets = new Map<string, FleetBucket>()
  /** Buckets dropped at the cap while not full (each may have given its user one capacity more). */
  evicted = 0

  constructor(public maxEntries: number) {}

  get size(): number {
    return this.buckets.size
  }

  /** One call of the script: `debt` charged, then `delta` > 0 granted (up to what it holds) or < 0 taken back. */
  apply(key: string, capacity: number, refill: number, debt: number, delta: number, now: number): number {
    const b = this.buckets.get(key)
    let tokens = b === undefined ? capacity : Math.min(capacity, b.tokens + Math.max(0, now - b.at) * refill)
    tokens -= debt
    let grant = 0
    if (delta < 0) {
      grant = delta
      tokens = Math.min(capacity, tokens - delta)
    } else if (delta > 0 && tokens > 0) {
      grant = Math.min(delta, tokens)
      tokens -= grant
    }
    if (b !== undefined) this.buckets.delete(key)
    if (tokens < capacity) {
      const stored = Math.round(tokens)
      this.buckets.set(key, { tokens: stored, at: now, fullAt: now + Math.ceil((capacity - stored) / refill) })
      this.trim(now)
    }
    return Math.trunc(grant)
  }

  /** What a key holds now (null: no bucket, i.e. full); for tests. */
  tokens(key: string, capacity: number, refill: number, now: number): number | null {
    const b = this.buckets.get(key)
    return b === undefined ? null : Math.min(capacity, b.tokens + Math.max(0, now - b.at) * refill)
  }

  /** Drops the buckets that are full by now. */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) if (b.fullAt <= now) this.buckets.delete(key)
  }

  private trim(now: number): void {
    for (const [key, b] of this.buckets) {
      if (this.buckets.size <= this.maxEntries) return
      this.buckets.delete(key)
      if (b.fullAt > now) this.evicted += 1
    }
  }
}
