/**
 * The SharedStore of a fleet: many Moat instances behind a load balancer share connection slots,
 * connection-rate buckets, auth-failure counters and bans through Redis (`cluster.redis`).
 *
 * Atomicity: every decision is one Lua script (`defineCommand`), so two instances can never both
 * take the last slot. rate-limiter-flexible was considered: it has buckets and windows but no
 * releasable concurrency slot (a connection held, then given back), which is the main limit here,
 * so the scripts are ours (about 40 lines of Lua) and no dependency is added.
 *
 * Keys: all under `{prefix}:` (a hash tag: in Redis Cluster every key lands in one slot, so a
 * script may touch several keys). Long caller keys are hashed.
 * - `{p}:s:<key>`    slots: a hash instanceId → slots held; PEXPIRE 10 min, refreshed.
 * - `{p}:instances`  sorted set instanceId → last heartbeat (Redis TIME, ms), every second.
 *   A slot counts only while its instance's heartbeat is under 5 s old: when an instance dies
 *   (kill -9, machine lost), its slots stop counting within 5 s and are deleted on the next
 *   acquire of that key; nothing it held leaks.
 * - `{p}:b:<key>`    token bucket (tokens, at), expires once it would be full again.
 * - `{p}:w:<key>`    counter of a fixed window, expires with the window.
 * - `{p}:bans`       hash kind\0value → JSON ban; `{p}:bans:v` a version bumped on each change;
 *   channel `{p}:bans` announces a change. Every instance keeps a replica: refreshed on each
 *   announcement and checked every second (a cheap GET of the version), so a missed message heals
 *   within a second.
 * - `{p}:tls:<listener>`  a TLS listener's session-ticket seed (redis-ticket-seeds.ts, on this connection).
 * Every instance re-asserts the slots it holds every 30 s and when Redis comes back (a Redis that
 * restarted empty, a replica promoted without the last writes, a release lost in an outage, is
 * corrected); that includes the sessions admitted on local limits during the outage (`hold`).
 * Bans: an instance whose replica saw a later ban version than the store now has (a restart, or a
 * failover that lost the last writes) writes its bans back (ban-restore.ts).
 *
 * Failure: commands are not queued while Redis is unreachable (they fail at once) and time out
 * after `commandTimeout`; the caller applies the limit's `onRedisDown` mode. `up` follows the
 * connection and the heartbeat (in Redis Cluster the client stays connected to the other nodes
 * while the primary of Moat's slot is lost: two missed heartbeats in a row mean down); each
 * transition is logged once and counted. Back up only once the heartbeat, the ban list and the
 * slots are written to the (possibly new) primary.
 */
import { createHash, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Cluster, Redis } from 'ioredis'
import type { RedisConfig } from '../config/types.js'
import type { Logger } from '../log/logger.js'
import { createRedisClient, describeRedis } from './redis-client.js'
import { restoreBans } from './ban-restore.js'
import { defineScripts, type Client } from './redis-scripts.js'
import type { Ban, BanKind, SharedStore } from './shared-store.js'
import { ClusterStats, storeOpIndex, type StoreOp } from '../stats/fleet-stats.js'

const HEARTBEAT_MS = 1000
const INSTANCE_TTL_MS = 5000
const SLOT_TTL_MS = 600_000
const RESYNC_MS = 30_000
const BANS_CHECK_MS = 1000
/** Heartbeats missed in a row before the store counts as down while the client still says connected. */
const MISSED_HEARTBEATS = 2
/** How long after the client gave up (`end`) it is started again: the cap of its own reconnect backoff. */
const RESTART_MS = 1000

export class RedisStore implements SharedStore {
  readonly kind = 'redis' as const
  readonly instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  readonly config: RedisConfig
  private readonly client: Client
  private readonly subscriber: Redis | Cluster
  private readonly logger: Logger
  private readonly stats: ClusterStats
  private readonly prefix: string
  private readonly instancesKey: string
  private readonly bansKey: string
  private readonly bansVersionKey: string
  /** Slots this instance holds, by store key: re-asserted every RESYNC_MS and after an outage. */
  private readonly held = new Map<string, number>()
  /** Slot keys whose release could not reach Redis: corrected at the next resync. */
  private readonly dirty = new Set<string>()
  private banArray: readonly Ban[] = []
  private bansVersion: string | null = null
  /** When (epoch ms, this clock) the replica last read the ban list. */
  private bansReadAt = 0
  private missedHeartbeats = 0
  private recovering = false
  private readonly banListeners: Array<() => void> = []
  private isUp = false
  private wasEverUp = false
  private closed = false
  private readonly timers: NodeJS.Timeout[] = []
  private upWaiters: Array<() => void> = []
  private refreshing: Promise<void> | null = null

  constructor(config: RedisConfig, logger: Logger, stats: ClusterStats = new ClusterStats(), client?: Redis | Cluster) {
    this.config = config
    this.logger = logger
    this.stats = stats
    this.prefix = `{${config.prefix}}:`
    this.instancesKey = `${this.prefix}instances`
    this.bansKey = `${this.prefix}bans`
    this.bansVersionKey = `${this.prefix}bans:v`
    const base = client ?? createRedisClient(config)
    this.client = defineScripts(base)
    this.subscriber = base.duplicate()
    this.client.on('ready', () => this.recover())
    this.client.on('close', () => this.down())
    this.client.on('error', () => { /* reported through `up` and the per-call errors */ })
    this.subscriber.on('error', () => { /* the main connection reports the outage */ })
    this.subscriber.on('message', (channel: string) => {
      if (channel === this.bansKey) void this.refreshBans(true)
    })
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(this.bansKey).catch(() => { /* the periodic check heals a missed subscription */ })
    })
    this.client.on('end', () => this.restart(this.client, 'client'))
    this.subscriber.on('end', () => this.restart(this.subscriber, 'subscriber'))
  }

  /**
   * ioredis stops reconnecting for good (`end`) when a Sentinel's `+switch-master` reaches it while
   * it is still asking the Sentinels where the primary is: the failover detector of the lost
   * connection aborts that lookup. Only `close()` may end a connection, so it is started again.
   */
  private restart(connection: Redis | Cluster, which: string): void {
    if (this.closed) return
    this.logger.warn({ event: 'cluster_store_reconnect', redis: describeRedis(this.config), connection: which }, `the redis ${which} connection gave up reconnecting: starting it again in ${RESTART_MS} ms`)
    const timer = setTimeout(() => {
      if (!this.closed) connection.connect().catch(() => { /* ends again: restarted again */ })
    }, RESTART_MS)
    timer.unref()
  }

  /** Connects (in the background: an unreachable Redis is an outage, handled per limit, not a startup failure). */
  start(): void {
    this.client.connect().catch(() => { /* retried by ioredis; `up` stays false */ })
    this.subscriber.connect().catch(() => { /* retried */ })
    const heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS)
    const bans = setInterval(() => void this.refreshBans(false), BANS_CHECK_MS)
    const resync = setInterval(() => void this.resync(), RESYNC_MS)
    for (const t of [heartbeat, bans, resync]) {
      t.unref()
      this.timers.push(t)
    }
  }

  get up(): boolean {
    return this.isUp
  }

  /** The connection, for the fleet's session-ticket seeds (redis-ticket-seeds.ts): one client per instance. */
  get redis(): Redis | Cluster {
    return this.client
  }

  /** Resolves once Redis is reachable, or after `timeoutMs` (whichever first). */
  whenUp(timeoutMs: number): Promise<boolean> {
    if (this.isUp) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.upWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /**
   * Reachable (again): announce ourselves, write back bans the store lost, take the ban list,
   * re-assert our slots, then count as up. Once at a time; on a failed step the next heartbeat retries.
   */
  private recover(): void {
    if (this.closed || this.isUp || this.recovering) return
    this.recovering = true
    void (async () => {
      if (!(await this.heartbeat())) return false
      await this.restoreBans()
      await Promise.all([this.refreshBans(true), this.resync()])
      return true
    })().catch(() => false).then((ok) => {
      this.recovering = false
      if (!ok || this.closed || this.client.status !== 'ready' || this.isUp) return
      this.isUp = true
      this.missedHeartbeats = 0
      this.stats.transitions[1]! += 1
      this.logger[this.wasEverUp ? 'warn' : 'info']({ event: 'cluster_store_up', redis: describeRedis(this.config), instance: this.instanceId }, this.wasEverUp ? 'redis reachable again: fleet-wide limits restored' : 'redis connected: fleet-wide limits and bans shared')
      this.wasEverUp = true
      const waiters = this.upWaiters
      this.upWaiters = []
      for (const wake of waiters) wake()
    })
  }

  private down(): void {
    if (this.closed || !this.isUp) return
    this.isUp = false
    this.stats.transitions[0]! += 1
    const modes = this.config.onRedisDown
    this.logger.error({ event: 'cluster_store_down', redis: describeRedis(this.config), onRedisDown: modes }, `redis unreachable: new connections follow onRedisDown (connections: ${modes.connections}, bans: ${modes.bans}, lockout: ${modes.lockout}); open sessions are not affected`)
  }

  /** Every second: the heartbeat, and whether the store is reachable by it (down after missed ones, recovered after one that passed). */
  private async beat(): Promise<void> {
    const ok = await this.heartbeat()
    if (this.closed) return
    if (ok) {
      this.missedHeartbeats = 0
      if (!this.isUp && this.client.status === 'ready') this.recover()
    } else if (++this.missedHeartbeats >= MISSED_HEARTBEATS) {
      this.down()
    }
  }

  private key(kind: string, key: string): string {
    const k = key.length <= 200 ? key : `#${createHash('sha256').update(key).digest('base64')}`
    return `${this.prefix}${kind}:${k}`
  }

  private async timed<T>(op: StoreOp, run: () => Promise<T>): Promise<T> {
    const i = storeOpIndex[op]
    const started = performance.now()
    this.stats.calls[i]! += 1
    try {
      return await run()
    } catch (err) {
      this.stats.errors[i]! += 1
      throw err
    } finally {
      this.stats.seconds[i]! += (performance.now() - started) / 1000
    }
  }

  /**
   * A slot taken on local limits while the store was down (`onRedisDown.connections: local`): kept
   * with the slots this instance holds, so the resync writes it once Redis is back and the fleet-wide
   * count includes it. Released like any other slot.
   */
  hold(key: string): void {
    const k = this.key('s', key)
    this.held.set(k, (this.held.get(k) ?? 0) + 1)
  }

  async acquire(key: string, max: number): Promise<boolean> {
    const k = this.key('s', key)
    const ok = await this.timed('acquire', () => this.client.moatAcquire(k, this.instancesKey, this.instanceId, max, INSTANCE_TTL_MS, SLOT_TTL_MS))
    if (ok === 1) this.held.set(k, (this.held.get(k) ?? 0) + 1)
    return ok === 1
  }

  release(key: string): void {
    const k = this.key('s', key)
    const n = (this.held.get(k) ?? 1) - 1
    if (n <= 0) this.held.delete(k)
    else this.held.set(k, n)
    this.timed('release', () => this.client.moatRelease(k, this.instanceId)).catch(() => this.dirty.add(k))
  }

  async take(key: string, capacity: number, refillPerMs: number): Promise<boolean> {
    const k = this.key('b', key)
    return (await this.timed('take', () => this.client.moatTake(k, capacity, refillPerMs))) === 1
  }

  async count(key: string, windowMs: number): Promise<number> {
    const k = this.key('w', key)
    return this.timed('count', () => this.client.moatCount(k, windowMs))
  }

  async addBan(ban: Ban): Promise<void> {
    await this.timed('add_ban', async () => {
      const ms = ban.until === null ? null : ban.until - Date.now()
      if (ms !== null && ms <= 0) return
      await this.client.multi()
        .hset(this.bansKey, `${ban.kind}\u0000${ban.value}`, JSON.stringify(ban))
        .incr(this.bansVersionKey)
        .publish(this.bansKey, 'add')
        .exec()
    })
    await this.refreshBans(true)
  }

  async removeBan(kind: BanKind, value: string): Promise<boolean> {
    const removed = await this.timed('remove_ban', async () => {
      const result = await this.client.multi()
        .hdel(this.bansKey, `${kind}\u0000${value}`)
        .incr(this.bansVersionKey)
        .publish(this.bansKey, 'remove')
        .exec()
      return Number(result?.[0]?.[1] ?? 0) > 0
    })
    await this.refreshBans(true)
    return removed
  }

  bans(): readonly Ban[] {
    const now = Date.now()
    for (const ban of this.banArray) {
      if (ban.until !== null && ban.until <= now) {
        this.banArray = this.banArray.filter((b) => b.until === null || b.until > now)
        break
      }
    }
    return this.banArray
  }

  onBans(listener: () => void): void {
    this.banListeners.push(listener)
  }

  /** Takes the ban list from Redis when its version moved (or always, when `force`). */
  private refreshBans(force: boolean): Promise<void> {
    if (this.refreshing !== null) return force ? this.refreshing.then(() => this.refreshBans(true)) : this.refreshing
    const run = this.timed('bans_refresh', async () => {
      const version = await this.client.get(this.bansVersionKey)
      if (!force && version === this.bansVersion) return
      const raw = await this.client.hgetall(this.bansKey)
      const now = Date.now()
      const live: Ban[] = []
      const expired: string[] = []
      for (const [field, json] of Object.entries(raw)) {
        let ban: Ban
        try {
          ban = JSON.parse(json) as Ban
        } catch {
          continue
        }
        if (ban.until !== null && ban.until <= now) expired.push(field)
        else live.push(ban)
      }
      if (expired.length > 0) await this.client.hdel(this.bansKey, ...expired)
      this.bansVersion = version
      this.bansReadAt = now
      const before = this.banArray
      this.banArray = live
      if (!sameBans(before, live)) for (const listener of this.banListeners) listener()
    }).catch(() => { /* the replica keeps the last list; `up` reports the outage */ })
    this.refreshing = run.finally(() => { this.refreshing = null })
    return this.refreshing
  }

  /** True when the heartbeat reached Redis. */
  private async heartbeat(): Promise<boolean> {
    if (this.closed) return false
    return this.timed('heartbeat', () => this.client.moatHeartbeat(this.instancesKey, this.instanceId, INSTANCE_TTL_MS * 4)).then(() => true, () => false)
  }

  /** After an outage: the bans of this replica written back when the store's ban version is behind it. */
  private async restoreBans(): Promise<void> {
    if (this.bansVersion === null) return // never read a list: nothing to give back
    const restored = await this.timed('bans_refresh', () => restoreBans(this.client, this.bansKey, this.bansVersionKey, Number(this.bansVersion), this.bansReadAt, this.banArray))
    if (restored) this.logger.warn({ event: 'bans_restored', bans: this.banArray.length, version: this.bansVersion }, 'redis came back with an older ban list than this instance had seen: bans written back')
  }

  /** Writes what this instance holds (and clears what it no longer holds) into Redis. */
  private async resync(): Promise<void> {
    if (this.closed || (this.held.size === 0 && this.dirty.size === 0)) return
    await this.timed('resync', async () => {
      const pipeline = this.client.pipeline()
      for (const k of this.dirty) if (!this.held.has(k)) pipeline.hdel(k, this.instanceId)
      for (const [k, n] of this.held) pipeline.hset(k, this.instanceId, n).pexpire(k, SLOT_TTL_MS)
      await pipeline.exec()
      this.dirty.clear()
    }).catch(() => {})
  }

  /** Stops the timers and leaves: this instance's heartbeat and slots are removed at once. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const t of this.timers) clearInterval(t)
    if (this.client.status === 'ready') {
      try {
        const pipeline = this.client.pipeline().zrem(this.instancesKey, this.instanceId)
        for (const k of this.held.keys()) pipeline.hdel(k, this.instanceId)
        await pipeline.exec()
      } catch { /* leaving anyway: the heartbeat expiry covers it */ }
    }
    this.client.disconnect()
    this.subscriber.disconnect()
  }
}

function sameBans(a: readonly Ban[], b: readonly Ban[]): boolean {
  if (a.length !== b.length) return false
  const key = (x: Ban): string => `${x.kind}\u0000${x.value}\u0000${x.until}\u0000${x.createdAt}`
  const seen = new Set(a.map(key))
  return b.every((x) => seen.has(key(x)))
}
