/**
 * Where the fleet's admin endpoints are, for the sessions view (`GET /sessions?scope=fleet`): each
 * instance writes the URL it advertises into the hash `{p}:admin` (instanceId → JSON), and liveness
 * comes from the store's heartbeat (`{p}:instances`, RedisStore): nothing is written per
 * connection, and a dead instance drops out of the fleet view within the heartbeat's 5 s.
 *
 * Entries: `{"url": "http://10.0.0.5:9464"}` for an instance that serves an admin endpoint, and
 * `{"via": "<instanceId>"}` for the workers of `workers: N` (each has a store of its own, so a
 * heartbeat of its own, but its sessions are listed by its primary). Every instance re-writes its
 * entries every 5 s (a Redis that restarted empty is refilled); a lookup deletes the entries of
 * instances whose heartbeat is gone from the set (over 20 s old).
 */
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from '../log/logger.js'

/** A heartbeat older than this: the instance is not asked (RedisStore's INSTANCE_TTL_MS). */
export const LIVE_MS = 5000
const REFRESH_MS = 5000

const LOOKUP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beats = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {}
local seen = {}
for i = 1, #beats, 2 do
  seen[beats[i]] = true
  out[#out + 1] = beats[i]
  out[#out + 1] = tostring(now - tonumber(beats[i + 1]))
  out[#out + 1] = redis.call('HGET', KEYS[1], beats[i]) or ''
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not seen[f] then redis.call('HDEL', KEYS[1], f) end
end
return out`

export interface DirectoryEntry {
  readonly instance: string
  /** How old its last heartbeat is (Redis clock). */
  readonly ageMs: number
  /** The admin endpoint it advertises; null when it advertises none. */
  readonly url: string | null
  /** A worker of `workers: N`: the instance whose admin endpoint lists its sessions. */
  readonly via: string | null
}

export class InstanceDirectory {
  private readonly redis: Redis | Cluster
  private readonly key: string
  private readonly instancesKey: string
  private readonly logger: Logger
  /** What this instance writes: its own entry and its workers'. */
  private readonly entries = new Map<string, string>()
  private timer: NodeJS.Timeout | null = null

  constructor(redis: Redis | Cluster, prefix: string, readonly instanceId: string, logger: Logger) {
    this.redis = redis
    this.key = `{${prefix}}:admin`
    this.instancesKey = `{${prefix}}:instances`
    this.logger = logger
  }

  /** Advertises this instance's admin endpoint at `url`, now and every 5 s until close(). */
  advertise(url: string): void {
    this.entries.set(this.instanceId, JSON.stringify({ url }))
    this.write()
    if (this.timer !== null) return
    this.timer = setInterval(() => this.write(), REFRESH_MS)
    this.timer.unref()
  }

  /** A worker (its store's instance id) whose sessions this instance lists. */
  serve(workerInstance: string): void {
    this.entries.set(workerInstance, JSON.stringify({ via: this.instanceId }))
    this.write()
  }

  unserve(workerInstance: string): void {
    if (!this.entries.delete(workerInstance)) return
    this.redis.hdel(this.key, workerInstance).catch(() => { /* dropped at a lookup once its heartbeat is gone */ })
  }

  private write(): void {
    if (this.entries.size === 0) return
    this.redis.hset(this.key, Object.fromEntries(this.entries)).catch((err: Error) => {
      this.logger.debug({ event: 'instance_directory_write_failed', error: err.message }, 'could not advertise the admin endpoint in redis (retried in 5 s)')
    })
  }

  /** Every instance with a heartbeat in the store (live or not), with what it advertises. */
  async lookup(): Promise<DirectoryEntry[]> {
    const flat = (await this.redis.eval(LOOKUP, 2, this.key, this.instancesKey)) as string[]
    const out: DirectoryEntry[] = []
    for (let i = 0; i + 2 < flat.length; i += 3) {
      let url: string | null = null
      let via: string | null = null
      try {
        const entry = flat[i + 2] === '' ? {} : JSON.parse(flat[i + 2]!) as { url?: unknown; via?: unknown }
        if (typeof entry.url === 'string') url = entry.url
        if (typeof entry.via === 'string') via = entry.via
      } catch {
        // an entry written by hand: the instance counts as advertising nothing
      }
      out.push({ instance: flat[i]!, ageMs: Number(flat[i + 1]), url, via })
    }
    return out
  }

  /** Stops re-writing and removes this instance's entries. */
  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    if (this.entries.size === 0) return
    const fields = [...this.entries.keys()]
    this.entries.clear()
    await this.redis.hdel(this.key, ...fields).catch(() => { /* dropped at a lookup once the heartbeat is gone */ })
  }
}
