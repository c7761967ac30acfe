/**
 * Session-ticket keys. Each TLS listener seals its tickets (TLS 1.2 and 1.3) under one 48-byte key
 * (Node takes one per server), derived from a seed that a TicketSeeds provider keeps and replaces
 * every `tls.resumption.rotate`:
 * - LocalTicketSeeds (here): one process, its own seeds;
 * - workers: the primary holds the seeds and sends them to every worker (workers/);
 * - `cluster.redis`: one seed per listener in Redis, shared by the fleet (fleet/redis-ticket-seeds.ts).
 * The key is derived from the seed, the listener's name and the fingerprint of its TLS files: two
 * listeners never read each other's tickets, and new certificates, CA or CRL end every older ticket
 * (in every process that loads them, without a word between processes).
 */
import { hkdfSync, randomBytes } from 'node:crypto'
import { RedisStore } from '../fleet/redis-store.js'
import { RedisTicketSeeds } from '../fleet/redis-ticket-seeds.js'
import type { SharedStore } from '../fleet/shared-store.js'
import type { Logger } from '../log/logger.js'

/** Bytes of a seed: as much secret as the key derived from it needs. */
export const SEED_BYTES = 32

/** Where a listener's seed comes from. Every method is cheap and synchronous; none runs per handshake. */
export interface TicketSeeds {
  /**
   * Keeps a seed for `listener`, replaced every `rotateMs`; `apply` gets the current seed at once
   * and every later one. Watching again (a reload) replaces `apply` and the period, not the seed.
   */
  watch(listener: string, rotateMs: number, apply: (seed: Buffer) => void): void
  /** Stops keeping `listener`'s seed (the listener closed, or turned resumption off). */
  unwatch(listener: string): void
}

/** The 48-byte ticket key (name, HMAC key, AES key) of `listener` for `seed` and its TLS files. */
export function ticketKey(seed: Buffer, listener: string, fingerprint: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', seed, fingerprint, `moat tls ticket key\0${listener}`, 48))
}

interface LocalSeed {
  seed: Buffer
  /** Date.now() when this seed was made: the next one is due `rotateMs` later. */
  bornAt: number
  rotateMs: number
  apply: (seed: Buffer) => void
  timer: NodeJS.Timeout | null
}

/** Seeds made in this process, each replaced on its own timer (one Moat process, or the primary). */
export class LocalTicketSeeds implements TicketSeeds {
  private readonly seeds = new Map<string, LocalSeed>()

  watch(listener: string, rotateMs: number, apply: (seed: Buffer) => void): void {
    let entry = this.seeds.get(listener)
    if (entry === undefined) {
      entry = { seed: randomBytes(SEED_BYTES), bornAt: Date.now(), rotateMs, apply, timer: null }
      this.seeds.set(listener, entry)
    }
    entry.apply = apply
    entry.rotateMs = rotateMs
    this.schedule(listener, entry)
    apply(entry.seed)
  }

  unwatch(listener: string): void {
    const entry = this.seeds.get(listener)
    if (entry?.timer != null) clearTimeout(entry.timer)
    this.seeds.delete(listener)
  }

  close(): void {
    for (const listener of [...this.seeds.keys()]) this.unwatch(listener)
  }

  private schedule(listener: string, entry: LocalSeed): void {
    if (entry.timer !== null) clearTimeout(entry.timer)
    const due = Math.max(0, entry.bornAt + entry.rotateMs - Date.now())
    entry.timer = setTimeout(() => {
      if (this.seeds.get(listener) !== entry) return
      entry.seed = randomBytes(SEED_BYTES)
      entry.bornAt = Date.now()
      this.schedule(listener, entry)
      entry.apply(entry.seed)
    }, due)
    entry.timer.unref() // a rotation due must not keep a stopped process alive
  }
}

/** The seeds of a Moat that is not a worker: the fleet's in Redis when its store is Redis, else its own. */
export function ticketSeedsFor(store: SharedStore, logger: Logger): TicketSeeds {
  return store instanceof RedisStore ? new RedisTicketSeeds(store.redis, store.config.prefix, logger) : new LocalTicketSeeds()
}
