/**
 * The primary's side of the workers store: one LocalStore answers every worker's calls, so the
 * fleet-wide limits hold across workers. It remembers which worker holds which slots and gives
 * them back when that worker dies (its connections died with it), and pushes the ban list to every
 * worker whenever it changes (their `bans()` reads that replica synchronously).
 */
import type { Logger } from '../log/logger.js'
import { isMessage, post, type Channel, type StoreRequest } from './messages.js'
import { LocalStore } from '../fleet/shared-store.js'

/** How often buckets that have refilled and windows that are over are dropped. */
const SWEEP_EVERY_MS = 60_000
const FULL_AFTER_MS = 600_000

interface Peer {
  readonly channel: Channel
  /** Slots this worker holds, by key. */
  readonly held: Map<string, number>
  readonly onMessage: (message: unknown) => void
}

export class StoreHost {
  readonly store: LocalStore
  private readonly peers = new Map<Channel, Peer>()
  private readonly logger: Logger | null
  private readonly sweeper: NodeJS.Timeout

  constructor(options: { logger?: Logger; store?: LocalStore } = {}) {
    this.store = options.store ?? new LocalStore()
    this.logger = options.logger ?? null
    this.sweeper = setInterval(() => this.store.sweep(FULL_AFTER_MS), SWEEP_EVERY_MS).unref()
    // A ban added or removed anywhere (a worker, or the primary's ban API) reaches every worker.
    this.store.onBans(() => this.broadcastBans())
  }

  /** Starts answering a worker's store calls, and sends it the current bans (a WorkerStore created later asks for them again). */
  attach(channel: Channel): void {
    if (this.peers.has(channel)) return
    const peer: Peer = { channel, held: new Map(), onMessage: (message) => this.receive(peer, message) }
    this.peers.set(channel, peer)
    channel.on('message', peer.onMessage)
    post(channel, { moat: 'bans', bans: this.store.bans() })
  }

  /** The worker is gone: the slots it held are released. */
  detach(channel: Channel): void {
    const peer = this.peers.get(channel)
    if (peer === undefined) return
    this.peers.delete(channel)
    channel.off('message', peer.onMessage)
    let released = 0
    for (const [key, n] of peer.held) {
      for (let i = 0; i < n; i++) this.store.release(key)
      released += n
    }
    peer.held.clear()
    if (released > 0) this.logger?.info({ event: 'store_released', slots: released }, 'released the connection slots of a worker that ended')
  }

  /** Slots a worker holds now (for tests and logs). */
  heldBy(channel: Channel): number {
    let n = 0
    for (const v of this.peers.get(channel)?.held.values() ?? []) n += v
    return n
  }

  close(): void {
    clearInterval(this.sweeper)
    for (const channel of [...this.peers.keys()]) this.detach(channel)
  }

  private receive(peer: Peer, message: unknown): void {
    if (!isMessage(message) || message.moat !== 'store') return
    const r = message as StoreRequest
    const key = typeof r.key === 'string' ? r.key : ''
    switch (r.op) {
      case 'acquire': {
        const ok = this.store.acquireNow(key, Number(r.max))
        if (ok) peer.held.set(key, (peer.held.get(key) ?? 0) + 1)
        this.reply(peer, r, key, ok)
        return
      }
      case 'release': {
        // Only a slot this worker holds: a worker cannot release another's.
        const n = peer.held.get(key)
        if (n === undefined) return
        if (n <= 1) peer.held.delete(key)
        else peer.held.set(key, n - 1)
        this.store.release(key)
        return
      }
      case 'bans':
        post(peer.channel, { moat: 'bans', bans: this.store.bans() })
        return
      case 'take':
        this.reply(peer, r, key, this.store.takeNow(key, Number(r.capacity), Number(r.refillPerMs)))
        return
      case 'count':
        this.reply(peer, r, key, this.store.countNow(key, Number(r.windowMs)))
        return
      case 'addBan':
        if (r.ban !== undefined) {
          this.store.addBanNow(r.ban)
        }
        this.reply(peer, r, key, true)
        return
      case 'removeBan': {
        const removed = r.kind !== undefined && r.value !== undefined && this.store.bans().some((b) => b.kind === r.kind && b.value === r.value)
        if (removed) {
          void this.store.removeBan(r.kind!, r.value!)
        }
        this.reply(peer, r, key, removed)
        return
      }
    }
  }

  /** Bans made from the primary itself (an admin command, a test): stored, then pushed to every worker. */
  addBan(ban: Parameters<LocalStore['addBanNow']>[0]): void {
    this.store.addBanNow(ban) // pushed to every worker by the onBans listener
  }

  private broadcastBans(): void {
    const bans = this.store.bans()
    for (const peer of this.peers.values()) post(peer.channel, { moat: 'bans', bans })
  }

  private reply(peer: Peer, r: StoreRequest, key: string, result: boolean | number): void {
    post(peer.channel, { moat: 'store-reply', id: r.id, op: r.op, key, result })
  }
}
