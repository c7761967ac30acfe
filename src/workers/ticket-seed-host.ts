/**
 * The primary's side of the session-ticket seeds (`workers: N`): one seed per TLS listener with
 * resumption on, made and rotated here, or the fleet's from Redis (`cluster.redis`: the primary
 * asks Redis for all its workers). Each seed goes to every worker: to a starting one before its
 * config, to all at every rotation. A worker that restarts gets the seeds in use, so the tickets
 * its predecessor issued still resume.
 */
import { DEFAULT_TLS_RESUMPTION } from '../config/tls-resumption.js'
import type { MoatConfig } from '../config/types.js'
import type { TicketSeeds } from '../listeners/ticket-keys.js'
import { post, type Channel } from './messages.js'

export class TicketSeedHost {
  private readonly provider: TicketSeeds
  private readonly workers: () => Iterable<Channel>
  private readonly watched = new Set<string>()
  /** The seed in use per listener, base64 (as sent). */
  private readonly seeds = new Map<string, string>()

  /** `workers`: the channels of the workers alive now. */
  constructor(provider: TicketSeeds, workers: () => Iterable<Channel>) {
    this.provider = provider
    this.workers = workers
  }

  /** Keeps a seed for each TLS listener of `config` with resumption on (at start and on each reload). */
  configure(config: MoatConfig): void {
    const wanted = new Map<string, number>()
    for (const l of config.listeners) {
      const resumption = l.tls?.resumption ?? DEFAULT_TLS_RESUMPTION
      if (l.tls != null && resumption.enabled) wanted.set(l.name, resumption.rotateMs)
    }
    for (const listener of [...this.watched]) {
      if (wanted.has(listener)) continue
      this.provider.unwatch(listener)
      this.watched.delete(listener)
      this.seeds.delete(listener)
    }
    for (const [listener, rotateMs] of wanted) {
      this.watched.add(listener)
      this.provider.watch(listener, rotateMs, (seed) => this.publish(listener, seed))
    }
  }

  /** A worker that starts: every seed, before its config (the channel keeps the order). */
  greet(worker: Channel): void {
    for (const [listener, seed] of this.seeds) post(worker, { moat: 'ticket-seed', listener, seed })
  }

  close(): void {
    for (const listener of this.watched) this.provider.unwatch(listener)
    this.watched.clear()
    this.seeds.clear()
  }

  private publish(listener: string, seed: Buffer): void {
    const encoded = seed.toString('base64')
    if (this.seeds.get(listener) === encoded) return // the same seed applied again (a reload)
    this.seeds.set(listener, encoded)
    for (const worker of this.workers()) post(worker, { moat: 'ticket-seed', listener, seed: encoded })
  }
}
