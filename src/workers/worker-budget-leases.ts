/**
 * A worker's side of fleet-wide per-user rates without Redis (`workers: N`, `limits.perUsername`):
 * the renewal loop (fleet/lease-loop.ts) sends each renewal to the cluster primary over the IPC
 * channel, one message for all this worker's users, and the primary answers from its fleet
 * buckets (lease-host.ts). So a user spread over the workers gets the configured rate in total,
 * as a user spread over instances does with cluster.redis.
 *
 * The primary is never down for its own workers, but an answer may be late or lost (the primary
 * busy, stopped, or restarting this worker): a renewal not answered within `timeoutMs` fails, and
 * the loop falls back to per-worker buckets exactly as when Redis fails (logged once per
 * transition, counted), retrying a second later. A grant that arrives after its timeout is not
 * credited: those credits are lost to the user until its fleet bucket refills.
 */
import type { LeaseCall } from '../limits/budget-leases.js'
import type { LeaseTransport } from '../fleet/lease-loop.js'
import { leaseKey } from '../fleet/redis-budget-leases.js'
import { isMessage, post, type Channel, type LeaseGrants } from './messages.js'

/** Five renewal periods: past it the worker's users would be starved of credits, so they go local. */
export const LEASE_TIMEOUT_MS = 500

interface Pending {
  resolve: (grants: number[]) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

export class WorkerLeaseTransport implements LeaseTransport {
  readonly source = 'the cluster primary'
  private readonly pending = new Map<number, Pending>()
  private readonly onMessage: (message: unknown) => void
  private nextId = 0
  private closed = false

  constructor(private readonly channel: Channel, private readonly timeoutMs = LEASE_TIMEOUT_MS) {
    this.onMessage = (message) => this.receive(message)
    channel.on('message', this.onMessage)
  }

  get up(): boolean {
    return !this.closed
  }

  send(calls: readonly LeaseCall[]): Promise<number[]> {
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1
    const id = this.nextId
    // Long user names hashed here, as for Redis: the message stays small, the primary's keys bounded.
    const ask = { moat: 'leases' as const, id, calls: calls.map((c) => ({ key: leaseKey(c.key), capacity: c.capacity, refill: c.refill, debt: c.debt, delta: c.delta })) }
    return new Promise((resolve, reject) => {
      if (!post(this.channel, ask)) {
        reject(new Error('the IPC channel to the cluster primary is closed'))
        return
      }
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`the cluster primary did not answer a lease renewal within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
    })
  }

  /** After the loop's last exchange (Moat.shutdown closes the loop first). */
  close(): void {
    this.closed = true
    this.channel.off('message', this.onMessage)
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      this.pending.delete(id)
      p.reject(new Error('closed'))
    }
  }

  private receive(message: unknown): void {
    if (!isMessage(message) || message.moat !== 'lease-grants') return
    const reply = message as LeaseGrants
    const p = this.pending.get(reply.id)
    if (p === undefined) return // answered after its timeout: not credited
    this.pending.delete(reply.id)
    clearTimeout(p.timer)
    if (Array.isArray(reply.grants)) p.resolve(reply.grants.map(Number))
    else p.reject(new Error('a malformed answer from the cluster primary'))
  }
}
