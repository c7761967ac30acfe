/**
 * The SharedStore of a cluster worker (`workers: N`): every call goes to the primary over the IPC
 * channel, which answers from one LocalStore for all workers (store-host.ts), so a per-address or
 * per-user connection cap holds across workers, not per worker.
 *
 * Every call has a timeout and the calls waiting are bounded (`maxPending`). A call the primary
 * does not answer in time (or cannot be sent) is answered by the failure mode:
 * - `fail-closed` (default): acquire and take refuse, count reports a count over any threshold;
 * - `local`: the worker answers from its own LocalStore (limits per worker, not global, while the
 *   primary is unreachable).
 * Either way it is counted (`failures`) and logged once.
 *
 * Bans are a replica the primary pushes on every change, so `bans()` is synchronous.
 */
import type { Logger } from '../log/logger.js'
import { isMessage, post, type Channel, type StoreOp, type StoreReply, type StoreRequest } from './messages.js'
import { LocalStore, type Ban, type BanKind, type SharedStore, type StoreFailureMode } from '../fleet/shared-store.js'

export interface WorkerStoreOptions {
  /** The channel to the primary: `process` (default) in a cluster worker or forked child. */
  channel?: Channel
  /** How long a call waits for the primary (default 1000 ms). */
  timeoutMs?: number
  failureMode?: StoreFailureMode
  /** Calls waiting for the primary at most (default 10 000); past it a call is answered by the failure mode at once. */
  maxPending?: number
  logger?: Logger
  now?: () => number
}

interface Pending {
  resolve: (value: boolean | number) => void
  timer: NodeJS.Timeout
  request: StoreRequest
}

export class WorkerStore implements SharedStore {
  readonly kind = 'workers' as const
  /** Calls answered by the failure mode (timeout, full pending map, channel closed). */
  failures = 0
  private readonly channel: Channel
  private readonly timeoutMs: number
  private readonly failureMode: StoreFailureMode
  private readonly maxPending: number
  private readonly logger: Logger | null
  private readonly now: () => number
  private readonly pending = new Map<number, Pending>()
  /** Slots granted by the local fallback (failure mode `local`): released locally, not at the primary. */
  private readonly localHeld = new Map<string, number>()
  private readonly fallback: LocalStore | null
  private replica: readonly Ban[] = []
  private readonly banListeners: Array<() => void> = []
  /** Calls in a row the primary did not answer (0 once one is answered again). */
  private missed = 0
  private nextId = 0
  private warned = false
  private closed = false
  private readonly onMessage: (message: unknown) => void

  constructor(options: WorkerStoreOptions = {}) {
    this.channel = options.channel ?? processChannel()
    this.timeoutMs = options.timeoutMs ?? 1000
    this.failureMode = options.failureMode ?? 'fail-closed'
    this.maxPending = options.maxPending ?? 10_000
    this.logger = options.logger ?? null
    this.now = options.now ?? Date.now
    this.fallback = this.failureMode === 'local' ? new LocalStore(100_000, this.now) : null
    this.onMessage = (message) => this.receive(message)
    this.channel.on('message', this.onMessage)
    // Bans made before this store existed: the primary answers with the list.
    post(this.channel, { moat: 'store', id: 0, op: 'bans' })
  }

  acquire(key: string, max: number): Promise<boolean> {
    return this.call({ moat: 'store', id: 0, op: 'acquire', key, max }) as Promise<boolean>
  }

  release(key: string): void {
    const local = this.localHeld.get(key)
    if (local !== undefined) {
      if (local <= 1) this.localHeld.delete(key)
      else this.localHeld.set(key, local - 1)
      this.fallback!.release(key)
      return
    }
    if (!this.closed) post(this.channel, { moat: 'store', id: 0, op: 'release', key })
  }

  take(key: string, capacity: number, refillPerMs: number): Promise<boolean> {
    return this.call({ moat: 'store', id: 0, op: 'take', key, capacity, refillPerMs }) as Promise<boolean>
  }

  count(key: string, windowMs: number): Promise<number> {
    return this.call({ moat: 'store', id: 0, op: 'count', key, windowMs }) as Promise<number>
  }

  async addBan(ban: Ban): Promise<void> {
    await this.call({ moat: 'store', id: 0, op: 'addBan', ban })
  }

  removeBan(kind: BanKind, value: string): Promise<boolean> {
    return this.call({ moat: 'store', id: 0, op: 'removeBan', kind, value }) as Promise<boolean>
  }

  bans(): readonly Ban[] {
    const now = this.now()
    for (const ban of this.replica) {
      if (ban.until !== null && ban.until <= now) {
        this.replica = this.replica.filter((b) => b.until === null || b.until > now)
        break
      }
    }
    return this.replica
  }

  /** Calls waiting for the primary now. */
  get pendingCalls(): number {
    return this.pending.size
  }

  close(): Promise<void> {
    this.closed = true
    this.channel.off('message', this.onMessage)
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      this.pending.delete(id)
      p.resolve(this.failed(p.request, 'closed'))
    }
    return Promise.resolve()
  }

  private call(request: StoreRequest): Promise<boolean | number> {
    if (this.closed) return Promise.resolve(this.failed(request, 'closed'))
    if (this.pending.size >= this.maxPending) return Promise.resolve(this.failed(request, 'pending_full'))
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1
    const id = this.nextId
    request.id = id
    if (!post(this.channel, request)) return Promise.resolve(this.failed(request, 'channel_closed'))
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        resolve(this.failed(request, 'timeout'))
      }, this.timeoutMs)
      this.pending.set(id, { resolve, timer, request })
    })
  }

  private receive(message: unknown): void {
    if (!isMessage(message)) return
    if (message.moat === 'bans') {
      const bans = (message as unknown as { bans: unknown }).bans
      if (Array.isArray(bans)) this.setReplica(bans as Ban[])
      return
    }
    if (message.moat !== 'store-reply') return
    const reply = message as StoreReply
    const p = this.pending.get(reply.id)
    if (p === undefined) {
      // Answered after its timeout: a slot the primary granted that nobody will use goes back.
      if (reply.op === 'acquire' && reply.result === true) post(this.channel, { moat: 'store', id: 0, op: 'release', key: reply.key })
      return
    }
    this.pending.delete(reply.id)
    clearTimeout(p.timer)
    this.missed = 0
    if (reply.op === 'addBan' && p.request.ban !== undefined) this.ensureReplica(p.request.ban)
    p.resolve(reply.result ?? false)
  }

  /** What a call the primary did not answer resolves to. */
  private failed(request: StoreRequest, why: string): boolean | number {
    this.failures += 1
    this.missed += 1
    if (!this.warned) {
      this.warned = true
      this.logger?.warn({ event: 'store_unavailable', store: 'workers', op: request.op, why, failureMode: this.failureMode }, 'the cluster primary did not answer a shared-limit call: answering by the failure mode (logged once)')
    }
    return this.fallbackAnswer(request.op, request)
  }

  private fallbackAnswer(op: StoreOp, r: StoreRequest): boolean | number {
    const local = this.fallback
    switch (op) {
      case 'acquire': {
        if (local === null || !local.acquireNow(r.key!, r.max!)) return false
        this.localHeld.set(r.key!, (this.localHeld.get(r.key!) ?? 0) + 1)
        return true
      }
      case 'take':
        return local === null ? false : local.takeNow(r.key!, r.capacity!, r.refillPerMs!)
      case 'count':
        return local === null ? Number.MAX_SAFE_INTEGER : local.countNow(r.key!, r.windowMs!)
      case 'addBan':
        // Enforced here at least, even if the primary never heard of it.
        this.ensureReplica(r.ban!)
        return false
      default:
        return false
    }
  }

  private ensureReplica(ban: Ban): void {
    if (this.replica.some((b) => b.kind === ban.kind && b.value === ban.value && b.until === ban.until)) return
    this.setReplica([...this.replica.filter((b) => !(b.kind === ban.kind && b.value === ban.value)), ban])
  }

  private setReplica(bans: readonly Ban[]): void {
    this.replica = bans
    for (const listener of this.banListeners) listener()
  }

  onBans(listener: () => void): void {
    this.banListeners.push(listener)
  }

  /** The primary answered the last call (or none has gone unanswered yet). */
  get up(): boolean {
    return !this.closed && this.missed === 0
  }
}

/** `process` as a Channel: it must have been started with an IPC channel (cluster worker or fork). */
function processChannel(): Channel {
  if (typeof process.send !== 'function') throw new Error('WorkerStore needs an IPC channel to the primary (a cluster worker or a forked process)')
  return {
    send: (message, callback) => process.send!(message, undefined, {}, callback),
    on: (event, listener) => process.on(event, listener),
    off: (event, listener) => process.off(event, listener),
  }
}
