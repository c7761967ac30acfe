/**
 * The session-ticket seeds of a fleet (`cluster.redis`), so a ticket one instance issued resumes on
 * every other (listeners/ticket-keys.ts derives each listener's key from its seed). One seed per TLS
 * listener name, in the hash `{prefix}:tls:<listener>` (seed, at): under the store's hash tag, one
 * cluster slot.
 *
 * Each instance asks for its listeners' seeds every few seconds (and when one is due), never per
 * handshake. One Lua script answers: the seed in Redis, or, when that one is older than the
 * caller's rotation period by Redis' clock (or there is none), the fresh seed the caller brought,
 * stored in its place. The script is atomic, so one instance rotates and the others adopt its
 * seed at their next ask.
 *
 * Until Redis first answers, and while it cannot be reached, an instance keeps a seed of its own,
 * rotated on the same period: resumption then works within the instance, and across the fleet again
 * once Redis answers. Seeds are secrets: never logged.
 */
import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'

const SEED_BYTES = 32
/** The longest wait between two asks: how late an instance may adopt a seed another one made. */
const POLL_MAX_MS = 5000
const POLL_MIN_MS = 100
/** While Redis has not answered: ask again soon, so a starting instance joins the fleet's seed quickly. */
const RETRY_MS = 1000

const SEED = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'seed', 'at')
if cur[1] and cur[2] then
  local age = now - tonumber(cur[2])
  if age >= 0 and age < tonumber(ARGV[2]) then return {cur[1], age} end
end
redis.call('HSET', KEYS[1], 'seed', ARGV[1], 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {ARGV[1], 0}`

type SeedClient = (Redis | Cluster) & {
  moatTicketSeed(key: string, fresh: string, rotateMs: number, keepMs: number): Promise<[string, number]>
}

interface Watched {
  seed: Buffer
  /** Date.now() at which this seed was made (Redis' age of it, on this clock). */
  bornAt: number
  rotateMs: number
  apply: (seed: Buffer) => void
  timer: NodeJS.Timeout | null
  /** Whether the seed in use came from Redis (for the one log line when that changes). */
  shared: boolean
}

export class RedisTicketSeeds {
  private readonly client: SeedClient
  private readonly prefix: string
  private readonly logger: Logger
  private readonly watched = new Map<string, Watched>()

  /** `client`: the shared store's (RedisStore.redis); `prefix`: `cluster.redis.prefix`. */
  constructor(client: Redis | Cluster, prefix: string, logger: Logger) {
    client.defineCommand('moatTicketSeed', { numberOfKeys: 1, lua: SEED })
    this.client = client as SeedClient
    this.prefix = `{${prefix}}:tls:`
    this.logger = logger
  }

  watch(listener: string, rotateMs: number, apply: (seed: Buffer) => void): void {
    let entry = this.watched.get(listener)
    if (entry === undefined) {
      entry = { seed: randomBytes(SEED_BYTES), bornAt: Date.now(), rotateMs, apply, timer: null, shared: false }
      this.watched.set(listener, entry)
    }
    entry.apply = apply
    entry.rotateMs = rotateMs
    apply(entry.seed)
    this.schedule(listener, entry, 0)
  }

  unwatch(listener: string): void {
    const entry = this.watched.get(listener)
    if (entry?.timer != null) clearTimeout(entry.timer)
    this.watched.delete(listener)
  }

  close(): void {
    for (const listener of [...this.watched.keys()]) this.unwatch(listener)
  }

  private schedule(listener: string, entry: Watched, inMs: number): void {
    if (entry.timer !== null) clearTimeout(entry.timer)
    entry.timer = setTimeout(() => {
      entry.timer = null
      void this.ask(listener, entry)
    }, inMs)
    entry.timer.unref()
  }

  private async ask(listener: string, entry: Watched): Promise<void> {
    const fresh = randomBytes(SEED_BYTES)
    let seed: Buffer | null = null
    let age = 0
    try {
      const [encoded, ms] = await this.client.moatTicketSeed(this.prefix + listener, fresh.toString('base64'), entry.rotateMs, entry.rotateMs * 2 + POLL_MAX_MS)
      seed = Buffer.from(encoded, 'base64')
      age = Number(ms)
      if (seed.length !== SEED_BYTES) {
        seed = null // not one of ours: kept out until the script replaces it when it is due
        this.logger.warn({ event: 'tls_ticket_seed', listener, outcome: 'invalid' }, 'the ticket seed in redis is not a seed: using a local one until it is due')
      }
    } catch { /* Redis unreachable: the store logs the outage; a local seed goes on below */ }
    if (this.watched.get(listener) !== entry) return // unwatched meanwhile
    const now = Date.now()
    if (seed !== null) {
      entry.bornAt = now - age
      if (!entry.shared) this.logger.info({ event: 'tls_ticket_seed', listener, outcome: 'shared' }, 'session tickets shared with the fleet (redis)')
      entry.shared = true
      if (!seed.equals(entry.seed)) {
        entry.seed = seed
        entry.apply(seed)
      }
    } else if (now - entry.bornAt >= entry.rotateMs) {
      if (entry.shared) this.logger.warn({ event: 'tls_ticket_seed', listener, outcome: 'local' }, 'ticket seed due and redis unreachable: rotating a local one; tickets resume only on this instance until redis answers')
      entry.shared = false
      entry.seed = fresh
      entry.bornAt = now
      entry.apply(fresh)
    }
    const poll = Math.min(seed === null ? RETRY_MS : POLL_MAX_MS, Math.max(POLL_MIN_MS, entry.rotateMs / 10))
    this.schedule(listener, entry, Math.max(POLL_MIN_MS / 2, Math.min(poll, entry.bornAt + entry.rotateMs - now)))
  }
}
