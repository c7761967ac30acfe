/**
 * Connection limits, decided at accept time (before any byte is read) and, for user names, once a
 * CONNECT has been authenticated:
 * - overload (OverloadMonitor): refuse new connections while the process is past its ceilings;
 * - open connections in total, per source address and per user name;
 * - new connections per unit of time in total and per source address (token buckets whose
 *   capacity is one period of the rate: `20/s` admits at most 20 in any second).
 *
 * Per-address rate buckets live in an lru-cache (`connections.trackedAddresses`), so a flood from
 * spoofed or countless addresses cannot grow memory. Open-connection counts are exact: an entry
 * exists only while that address (user) has an open connection, so their number is bounded by the
 * open sockets. Limits are read from the running policy; a reload rebuilds the rate buckets and
 * keeps the counts.
 */
import { LRUCache } from 'lru-cache'
import type { ConnectionLimits, LiveConfig } from '../config/types.js'
import type { DenyReason } from '../stats/reasons.js'
import { BucketSpec, ExcessAction, nowMs, TokenBucket } from './token-bucket.js'
import type { OverloadMonitor } from './overload.js'

export type ConnectionRefusal = Extract<DenyReason, 'connection_rate' | 'too_many_connections' | 'server_overloaded' | 'banned'>
export const connectionRefusals: readonly ConnectionRefusal[] = ['connection_rate', 'too_many_connections', 'server_overloaded', 'banned']

export class ConnectionLimiter {
  private readonly policy: LiveConfig
  private readonly overload: OverloadMonitor
  private generation = 0
  private limits: ConnectionLimits | null = null
  private totalBucket: TokenBucket | null = null
  private addressSpec: BucketSpec | null = null
  private addressBuckets: LRUCache<string, TokenBucket> | null = null
  private open = 0
  private readonly perAddress = new Map<string, number>()
  private readonly perUser = new Map<string, number>()
  /** Refused connections, by reason (index into connectionRefusals). */
  readonly refused = new Float64Array(connectionRefusals.length)

  constructor(policy: LiveConfig, overload: OverloadMonitor) {
    this.policy = policy
    this.overload = overload
  }

  private adopt(): ConnectionLimits {
    const limits = this.policy.config.limits.connections
    this.generation = this.policy.generation
    if (limits === this.limits) return limits
    this.limits = limits
    const now = nowMs()
    this.totalBucket = limits.rate === null ? null : new TokenBucket(new BucketSpec(limits.rate, limits.rate.perMs), ExcessAction.Disconnect, false, now)
    this.addressSpec = limits.perAddressRate === null ? null : new BucketSpec(limits.perAddressRate, limits.perAddressRate.perMs)
    this.addressBuckets = this.addressSpec === null ? null : new LRUCache({ max: limits.trackedAddresses })
    return limits
  }

  /** A new connection from `address`: null when admitted (and counted), else why not. */
  admit(address: string): ConnectionRefusal | null {
    const limits = this.generation === this.policy.generation && this.limits !== null ? this.limits : this.adopt()
    if (this.overload.overloaded) return this.refuse('server_overloaded')
    if (limits.total !== null && this.open >= limits.total) return this.refuse('too_many_connections')
    const fromAddress = this.perAddress.get(address) ?? 0
    if (limits.perAddress !== null && fromAddress >= limits.perAddress) return this.refuse('too_many_connections')
    const now = nowMs()
    const total = this.totalBucket
    if (total !== null && total.waitFor(1, now) > 0) return this.refuse('connection_rate')
    let bucket: TokenBucket | undefined
    if (this.addressBuckets !== null) {
      bucket = this.addressBuckets.get(address)
      if (bucket === undefined) {
        bucket = new TokenBucket(this.addressSpec!, ExcessAction.Disconnect, false, now)
        this.addressBuckets.set(address, bucket)
      }
      if (bucket.waitFor(1, now) > 0) return this.refuse('connection_rate')
    }
    total?.take(1)
    bucket?.take(1)
    this.open += 1
    this.perAddress.set(address, fromAddress + 1)
    return null
  }

  release(address: string): void {
    this.open -= 1
    const n = (this.perAddress.get(address) ?? 1) - 1
    if (n <= 0) this.perAddress.delete(address)
    else this.perAddress.set(address, n)
  }

  /** An authenticated CONNECT of `username`: true when admitted (and counted). */
  admitUser(username: string): boolean {
    const max = this.policy.config.limits.connections.perUsername
    const n = this.perUser.get(username) ?? 0
    if (max !== null && n >= max) {
      this.refuse('too_many_connections')
      return false
    }
    this.perUser.set(username, n + 1)
    return true
  }

  releaseUser(username: string): void {
    const n = (this.perUser.get(username) ?? 1) - 1
    if (n <= 0) this.perUser.delete(username)
    else this.perUser.set(username, n)
  }

  private refuse(reason: ConnectionRefusal): ConnectionRefusal {
    this.refused[connectionRefusals.indexOf(reason)]! += 1
    return reason
  }

  /** Per-address rate buckets held (bounded by `trackedAddresses`) and addresses / users with open connections. */
  get tracked(): { addressBuckets: number; addresses: number; users: number } {
    return { addressBuckets: this.addressBuckets?.size ?? 0, addresses: this.perAddress.size, users: this.perUser.size }
  }

  refusedFor(reason: ConnectionRefusal): number {
    return this.refused[connectionRefusals.indexOf(reason)]!
  }
}
