/**
 * The primary's side of fleet-wide per-user rates without Redis (`workers: N`): one set of fleet
 * buckets (limits/fleet-buckets.ts, the Lua script's arithmetic on the primary's monotonic clock)
 * answers every worker's lease renewals (worker-budget-leases.ts), so a user's rate holds across
 * the workers.
 *
 * A worker that exits gives nothing back explicitly (it is gone, and what it held with it): the
 * buckets it drew from refill on their own at the user's rate. A restarted worker starts with
 * fresh advances, charged as debt at its first renewals.
 *
 * Bounded: at most trackedUsers × rates × workers buckets (each worker remembers at most
 * `trackedUsers` users, each with up to three rates); full buckets are dropped at once or by the
 * sweep, and past the cap the bucket updated longest ago goes (fleet-buckets.ts says what that
 * costs). A renewal's calls are checked: a malformed one is granted nothing.
 */
import type { MoatConfig } from '../config/types.js'
import type { Logger } from '../log/logger.js'
import { FleetBuckets } from '../limits/fleet-buckets.js'
import { nowMs } from '../limits/token-bucket.js'
import { isMessage, post, type Channel, type LeaseAsk } from './messages.js'

const SWEEP_EVERY_MS = 10_000
/** A key as a worker sends it: `<kind>:<name>`, a name over 200 characters hashed (fleet/redis-budget-leases.ts). */
const MAX_KEY = 256

/** The buckets the fleet may need: each worker's users × their rates (the per-user rates of `config`). */
export function fleetBucketCap(config: MoatConfig, workers: number): number {
  const u = config.limits.perUsername
  const rates = u === null ? 0 : [u.messageRate, u.packetRate, u.byteRate].filter((r) => r !== null).length
  return Math.max(1000, (u?.trackedUsers ?? 0) * rates * workers)
}

export class LeaseHost {
  readonly buckets: FleetBuckets
  private readonly listeners = new Map<Channel, (message: unknown) => void>()
  private readonly sweeper: NodeJS.Timeout
  private warnedEvicted = false

  constructor(maxEntries: number, private readonly logger: Logger | null = null, private readonly now: () => number = nowMs) {
    this.buckets = new FleetBuckets(maxEntries)
    this.sweeper = setInterval(() => this.buckets.sweep(this.now()), SWEEP_EVERY_MS).unref()
  }

  /** A reload: the cap follows the new `trackedUsers` and rates (buckets past it go at the next renewal). */
  resize(maxEntries: number): void {
    this.buckets.maxEntries = maxEntries
  }

  attach(channel: Channel): void {
    if (this.listeners.has(channel)) return
    const listener = (message: unknown): void => this.receive(channel, message)
    this.listeners.set(channel, listener)
    channel.on('message', listener)
  }

  /** The worker is gone: nothing to give back (its buckets refill on their own). */
  detach(channel: Channel): void {
    const listener = this.listeners.get(channel)
    if (listener === undefined) return
    this.listeners.delete(channel)
    channel.off('message', listener)
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const channel of [...this.listeners.keys()]) this.detach(channel)
  }

  private receive(channel: Channel, message: unknown): void {
    if (!isMessage(message) || message.moat !== 'leases') return
    const ask = message as LeaseAsk
    if (!Array.isArray(ask.calls)) return
    const now = this.now()
    const grants = ask.calls.map((c) => {
      if (typeof c !== 'object' || c === null || typeof c.key !== 'string' || c.key.length > MAX_KEY) return 0
      const { capacity, refill, debt, delta } = c
      if (!(capacity > 0 && refill > 0 && debt >= 0 && Number.isFinite(capacity + refill + debt + delta))) return 0
      return this.buckets.apply(c.key, capacity, refill, debt, delta, now)
    })
    if (this.buckets.evicted > 0 && !this.warnedEvicted) {
      this.warnedEvicted = true
      this.logger?.warn({ event: 'user_rate_buckets_full', max: this.buckets.maxEntries }, 'more users are leasing per-user rates than the primary keeps buckets for: the oldest are dropped (each such user may get one burst more; logged once)')
    }
    post(channel, { moat: 'lease-grants', id: ask.id, grants })
  }
}
