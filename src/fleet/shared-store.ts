/**
 * Where the limits that only mean something fleet-wide keep their state: a user's concurrent
 * connections, an address's open connections and connection rate, auth-failure counters, and bans.
 *
 * Three implementations share this contract:
 * - `LocalStore` (this file): in process, the default (one Moat, one process);
 * - the workers store (`workers: N`): a worker forwards each call to the cluster primary, which
 *   runs one LocalStore for all workers;
 * - the Redis store (`cluster.redis`): many Moat instances, atomically through Lua scripts.
 *
 * Only connection-time decisions go through a store (they may wait: CONNECT is the one async step).
 * The per-packet path never calls a store: it reads `banned()` from a local replica, which a store
 * keeps fresh (a ban made anywhere is seen everywhere within a second).
 *
 * Keys are opaque strings chosen by the caller (`u:<username>`, `a:<address>`, ...). Every call is
 * bounded: a store never holds an entry for a key that has no open connection, no live bucket,
 * no live counter window and no unexpired ban.
 */

/** What a ban matches: an address or CIDR block, a user name, or a client id. */
export type BanKind = 'address' | 'username' | 'clientId'

export interface Ban {
  readonly kind: BanKind
  /** For `address`: an IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`). */
  readonly value: string
  /** Epoch milliseconds when the ban ends; null: until removed. */
  readonly until: number | null
  /** Free text shown in `moat ban list` and logs (never a secret). */
  readonly reason: string
  /** Epoch milliseconds when the ban was made. */
  readonly createdAt: number
  /** Who made it: `lockout` (auth failures), `admin` (moat ban add), ... */
  readonly source: string
}

/** What happens to a connection-time decision while the store cannot be reached. */
export type StoreFailureMode = 'fail-closed' | 'local'

export interface SharedStore {
  readonly kind: 'local' | 'workers' | 'redis'

  /**
   * Takes one slot of `key` if fewer than `max` are held; true when taken. The caller releases
   * exactly once per slot taken, when the connection ends.
   */
  acquire(key: string, max: number): Promise<boolean>
  release(key: string): void
  /**
   * A shared store only: records a slot of `key` taken without asking the store (admitted on local
   * limits while it was down), to be written to it once it is back; released like a slot taken.
   */
  hold?(key: string): void

  /**
   * Takes one token from the bucket `key` (holds at most `capacity` tokens, refilled at
   * `refillPerMs` tokens per millisecond, starts full); true when taken.
   */
  take(key: string, capacity: number, refillPerMs: number): Promise<boolean>

  /** Counts one event for `key` in a window of `windowMs` that starts at its first event; the count so far. */
  count(key: string, windowMs: number): Promise<number>

  /** Adds (or replaces: same kind and value) a ban, seen by every instance within a second. */
  addBan(ban: Ban): Promise<void>
  /** Removes the ban of that kind and value; true when there was one. */
  removeBan(kind: BanKind, value: string): Promise<boolean>
  /** The unexpired bans, from the local replica: synchronous, cheap, never waits on the network. */
  bans(): readonly Ban[]
  /**
   * Calls `listener` whenever the ban set may have changed (a ban added or removed here or, for a
   * shared store, on another instance once the replica sees it), so the owner recompiles its
   * lookup and closes the sessions a new ban matches. Used by the ban replica.
   */
  onBans(listener: () => void): void
  /** Whether the shared state can be reached now (always true in process). Read at CONNECT and scrape time. */
  readonly up: boolean

  close(): Promise<void>
}

interface Window {
  count: number
  endsAt: number
}

interface Bucket {
  tokens: number
  at: number
}

/**
 * The in-process store. Counters are exact; buckets and windows are dropped once they are full
 * again or over (checked lazily on access and by `sweep`, which the owner may call on a timer),
 * so memory follows live state, not history. `maxKeys` bounds the buckets and windows: past it the
 * oldest are dropped (a fresh bucket is full, so dropping one only ever admits more).
 */
export class LocalStore implements SharedStore {
  readonly kind: 'local' | 'workers' | 'redis' = 'local'
  private readonly slots = new Map<string, number>()
  private readonly buckets = new Map<string, Bucket>()
  private readonly windows = new Map<string, Window>()
  private readonly banList = new Map<string, Ban>()
  private readonly maxKeys: number
  private readonly now: () => number
  private readonly banListeners: Array<() => void> = []

  constructor(maxKeys = 100_000, now: () => number = Date.now) {
    this.maxKeys = maxKeys
    this.now = now
  }

  acquire(key: string, max: number): Promise<boolean> {
    return Promise.resolve(this.acquireNow(key, max))
  }

  acquireNow(key: string, max: number): boolean {
    const held = this.slots.get(key) ?? 0
    if (held >= max) return false
    this.slots.set(key, held + 1)
    return true
  }

  release(key: string): void {
    const held = (this.slots.get(key) ?? 1) - 1
    if (held <= 0) this.slots.delete(key)
    else this.slots.set(key, held)
  }

  take(key: string, capacity: number, refillPerMs: number): Promise<boolean> {
    return Promise.resolve(this.takeNow(key, capacity, refillPerMs))
  }

  takeNow(key: string, capacity: number, refillPerMs: number): boolean {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = { tokens: capacity, at: now }
      this.bounded(this.buckets)
      this.buckets.set(key, bucket)
    } else {
      bucket.tokens = Math.min(capacity, bucket.tokens + Math.max(0, now - bucket.at) * refillPerMs)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  count(key: string, windowMs: number): Promise<number> {
    return Promise.resolve(this.countNow(key, windowMs))
  }

  countNow(key: string, windowMs: number): number {
    const now = this.now()
    let w = this.windows.get(key)
    if (w === undefined || w.endsAt <= now) {
      if (w !== undefined) this.windows.delete(key)
      w = { count: 0, endsAt: now + windowMs }
      this.bounded(this.windows)
      this.windows.set(key, w)
    }
    w.count += 1
    return w.count
  }

  addBan(ban: Ban): Promise<void> {
    this.addBanNow(ban)
    return Promise.resolve()
  }

  addBanNow(ban: Ban): void {
    const id = `${ban.kind}\u0000${ban.value}`
    this.banList.delete(id)
    this.banList.set(id, ban)
    this.bansChanged()
  }

  removeBan(kind: BanKind, value: string): Promise<boolean> {
    const removed = this.banList.delete(`${kind}\u0000${value}`)
    if (removed) this.bansChanged()
    return Promise.resolve(removed)
  }

  onBans(listener: () => void): void {
    this.banListeners.push(listener)
  }

  /** In process: always reachable. */
  get up(): boolean {
    return true
  }

  private bansChanged(): void {
    for (const listener of this.banListeners) listener()
  }

  bans(): readonly Ban[] {
    const now = this.now()
    const live: Ban[] = []
    for (const [id, ban] of this.banList) {
      if (ban.until !== null && ban.until <= now) this.banList.delete(id)
      else live.push(ban)
    }
    return live
  }

  /** Drops buckets that have refilled and windows that are over. */
  sweep(fullAfterMs: number): void {
    const now = this.now()
    for (const [key, b] of this.buckets) if (now - b.at >= fullAfterMs) this.buckets.delete(key)
    for (const [key, w] of this.windows) if (w.endsAt <= now) this.windows.delete(key)
  }

  /** Open slots, live buckets and windows, bans: for metrics and tests. */
  get size(): { slots: number; buckets: number; windows: number; bans: number } {
    return { slots: this.slots.size, buckets: this.buckets.size, windows: this.windows.size, bans: this.banList.size }
  }

  close(): Promise<void> {
    return Promise.resolve()
  }

  private bounded(map: Map<string, unknown>): void {
    if (map.size < this.maxKeys) return
    const oldest = map.keys().next()
    if (oldest.done !== true) map.delete(oldest.value)
  }
}
