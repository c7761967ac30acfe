/**
 * The fleet-wide side of admission, owned by Moat and shared by its sessions:
 * - bans: the store's replica compiled into a BanList (on change, not per connection), checked at
 *   accept (address, CIDR) and at CONNECT (user name, client id); a new ban closes the open
 *   sessions it matches (lockout bans do not: an attacker guessing a user's password must not be
 *   able to throw the real user out);
 * - with a shared store (Redis): a user's open connections, an address's open connections and its
 *   connection rate, counted fleet-wide at CONNECT (the one async step), behind the per-instance
 *   limits that ConnectionLimiter keeps synchronously at accept (local in front: a local refusal
 *   never asks Redis);
 * - failed logins counted fleet-wide (auth/lockout.ts reports them here) and turned into a ban
 *   (source `lockout`) that every instance enforces;
 * - what each of these does while the store is down (`cluster.redis.onRedisDown`).
 * With the in-process store only the bans apply: the limiter's own counters already are the
 * whole truth, and nothing here is asynchronous.
 */
import type { LockoutConfig, RedisDownMode } from '../config/types.js'
import type { PolicyStore } from '../policy/store.js'
import type { CloseReason } from '../stats/reasons.js'
import type { SharedLockoutSink } from '../auth/lockout.js'
import type { Logger } from '../log/logger.js'
import { ReasonCode } from '../protocol/reason.js'
import { BanList } from './ban-list.js'
import type { Ban, SharedStore } from './shared-store.js'
import type { ClusterStats } from '../stats/fleet-stats.js'

/** A CONNECT refused by the fleet: why (close reason) and the reason code to answer with. */
export interface FleetRefusal {
  readonly why: CloseReason
  readonly reason: number
}

/** Slots a session holds in the shared store (bit mask). */
export const SLOT_ADDRESS = 1
export const SLOT_USER = 2

export interface FleetVerdict {
  readonly refusal: FleetRefusal | null
  readonly slots: number
}

const TOO_MANY: FleetRefusal = Object.freeze({ why: 'too_many_connections', reason: ReasonCode.QuotaExceeded })
const RATE: FleetRefusal = Object.freeze({ why: 'connection_rate', reason: ReasonCode.ConnectionRateExceeded })
const UNAVAILABLE: FleetRefusal = Object.freeze({ why: 'store_unavailable', reason: ReasonCode.ServerUnavailable })
const BANNED: FleetRefusal = Object.freeze({ why: 'banned', reason: ReasonCode.Banned })
const BANNED_AS_BAD_CREDENTIALS: FleetRefusal = Object.freeze({ why: 'banned', reason: ReasonCode.BadUserNameOrPassword })
const BANNED_AS_NOT_AUTHORIZED: FleetRefusal = Object.freeze({ why: 'banned', reason: ReasonCode.NotAuthorized })
const ADMITTED: FleetVerdict = Object.freeze({ refusal: null, slots: 0 })

/** The parts of a session the fleet reads (SessionState) and acts on. */
export interface BannableSession {
  readonly state: { readonly remoteAddress: string; readonly username: string | null; readonly clientId: string }
  banned(ban: Ban): void
}

const LOCAL_MODES = { connections: 'local', bans: 'local', lockout: 'local' } as const

export class Fleet implements SharedLockoutSink {
  readonly store: SharedStore
  /** A shared store (not in process): fleet-wide counts at CONNECT. */
  readonly remote: boolean
  private readonly policy: PolicyStore
  private readonly stats: ClusterStats
  private readonly logger: Logger
  private readonly modes: { readonly connections: RedisDownMode; readonly bans: RedisDownMode; readonly lockout: RedisDownMode }
  private list: BanList = BanList.EMPTY
  private readonly sessions: () => Iterable<BannableSession>

  constructor(store: SharedStore, policy: PolicyStore, stats: ClusterStats, logger: Logger, sessions: () => Iterable<BannableSession>) {
    this.store = store
    this.remote = store.kind !== 'local'
    this.policy = policy
    this.stats = stats
    this.logger = logger
    this.sessions = sessions
    this.modes = policy.config.cluster?.redis?.onRedisDown ?? LOCAL_MODES
    this.list = new BanList(store.bans())
    store.onBans(() => this.bansChanged())
  }

  /** The compiled bans, recompiled when the first of them expires. */
  private get bans(): BanList {
    const list = this.list
    if (list.nextExpiry <= Date.now()) return (this.list = new BanList(this.store.bans()))
    return list
  }

  get banCount(): number {
    return this.bans.size
  }

  /** At accept: a ban on the address or a CIDR holding it. */
  addressBanned(address: string): boolean {
    return this.bans.address(address) !== null
  }

  /**
   * At CONNECT, before any backend is asked: a ban on the address, the user name or the client id;
   * or a limit that fails closed while the store is down.
   */
  atConnect(address: string, username: string | null, clientId: string): FleetRefusal | null {
    const ban = this.bans.match(address, username, clientId)
    if (ban !== null) {
      const auth = this.policy.config.auth
      if (ban.source !== 'lockout' || auth.lockout?.reply === 'banned') return BANNED
      // A lockout ban answers like a wrong password, in the code `auth.badCredentialsReply` chose.
      return auth.badCredentialsReply === 'not-authorized' ? BANNED_AS_NOT_AUTHORIZED : BANNED_AS_BAD_CREDENTIALS
    }
    if (!this.remote || this.store.up) return null
    if (this.modes.bans === 'fail-closed') return UNAVAILABLE
    if (this.modes.lockout === 'fail-closed' && this.policy.config.auth.lockout !== null && username !== null) return UNAVAILABLE
    return null
  }

  /** Whether CONNECTs must wait for a fleet-wide count (a shared store and a limit that needs it). */
  needsAdmission(username: string | null): boolean {
    if (!this.remote) return false
    const c = this.policy.config.limits.connections
    return c.perAddress !== null || c.perAddressRate !== null || (username !== null && c.perUsername !== null)
  }

  /** Counts an authenticated CONNECT fleet-wide; the verdict says which slots it now holds. */
  async admit(address: string, username: string | null): Promise<FleetVerdict> {
    const c = this.policy.config.limits.connections
    const store = this.store
    let slots = 0
    if (!store.up) return this.storeDown(address, username)
    try {
      if (c.perAddressRate !== null && !(await store.take(`ar:${address}`, c.perAddressRate.count, c.perAddressRate.count / c.perAddressRate.perMs))) {
        return { refusal: RATE, slots: 0 }
      }
      if (c.perAddress !== null) {
        if (!(await store.acquire(`a:${address}`, c.perAddress))) return { refusal: TOO_MANY, slots: 0 }
        slots |= SLOT_ADDRESS
      }
      if (username !== null && c.perUsername !== null) {
        if (!(await store.acquire(`u:${username}`, c.perUsername))) {
          this.release(address, username, slots)
          return { refusal: TOO_MANY, slots: 0 }
        }
        slots |= SLOT_USER
      }
      return slots === 0 ? ADMITTED : { refusal: null, slots }
    } catch {
      this.release(address, username, slots)
      return this.storeDown(address, username)
    }
  }

  /**
   * The store cannot count this CONNECT: refused (fail-closed), or admitted on the local limits
   * already passed, its slots held by the store to be written when Redis is back, so the fleet-wide
   * count includes the sessions admitted meanwhile (a user over the limit then gets no new session).
   */
  private storeDown(address: string, username: string | null): FleetVerdict {
    if (this.modes.connections === 'fail-closed') return { refusal: UNAVAILABLE, slots: 0 }
    this.stats.localFallbacks += 1
    const store = this.store
    if (store.hold === undefined) return ADMITTED
    const c = this.policy.config.limits.connections
    let slots = 0
    if (c.perAddress !== null) {
      store.hold(`a:${address}`)
      slots |= SLOT_ADDRESS
    }
    if (username !== null && c.perUsername !== null) {
      store.hold(`u:${username}`)
      slots |= SLOT_USER
    }
    return slots === 0 ? ADMITTED : { refusal: null, slots }
  }

  release(address: string, username: string | null, slots: number): void {
    if ((slots & SLOT_ADDRESS) !== 0) this.store.release(`a:${address}`)
    if ((slots & SLOT_USER) !== 0 && username !== null) this.store.release(`u:${username}`)
  }

  /** A failed login (auth/lockout.ts): counted fleet-wide; at maxFailures, a ban every instance enforces. */
  fail(address: string, username: string | null, config: LockoutConfig): void {
    if (!this.remote || !this.store.up) return // the local table, in front, still counts
    if (config.per.includes('address')) this.countFailure('address', address, config)
    if (config.per.includes('username') && username !== null) this.countFailure('username', username, config)
  }

  private countFailure(kind: 'address' | 'username', value: string, config: LockoutConfig): void {
    this.store.count(`lf:${kind === 'address' ? 'a' : 'u'}:${value}`, config.windowMs).then((n) => {
      if (n < config.maxFailures) return
      const now = Date.now()
      const who = kind === 'address' ? { address: value } : { username: value }
      this.logger.warn({ audit: true, event: 'lockout_ban', scope: 'fleet', kind, ...who, failures: n, windowMs: config.windowMs, banMs: config.banMs }, 'repeated failed logins across the fleet: banned')
      return this.store.addBan({ kind, value, until: now + config.banMs, reason: `${n} failed logins`, createdAt: now, source: 'lockout' })
    }).catch(() => { /* the local table still counts; `up` reports the outage */ })
  }

  private bansChanged(): void {
    const list = this.list = new BanList(this.store.bans())
    if (list.size === 0) return
    let closed = 0
    for (const session of this.sessions()) {
      const s = session.state
      const ban = list.match(s.remoteAddress, s.username, s.clientId)
      if (ban === null || ban.source === 'lockout') continue
      session.banned(ban)
      closed += 1
    }
    if (closed > 0) {
      this.stats.sessionsBanned += closed
      this.logger.warn({ event: 'sessions_banned', sessions: closed }, 'a new ban closed open sessions')
    }
  }
}

