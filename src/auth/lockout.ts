/**
 * Brute-force protection: after `maxFailures` failed logins within `window` from one address, or
 * for one user name, further CONNECTs from it are refused for `ban` without asking any backend
 * (the client is answered the same as a bad password, or 0x8A Banned if so configured).
 *
 * Counters live in one LRU table per Moat (LockoutTable), bounded by `maxEntries`, so a reload
 * keeps them; the policy that reads them (Lockout) is rebuilt per generation. A success does not
 * reset a counter: the window does (a device logging in often must not wipe out an attacker's tally).
 * Long user names are hashed into the key, so each entry stays small. Each ban it starts is an
 * audit line (`lockout_ban`: the address or user name, never the password tried).
 */
import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { LockoutConfig } from '../config/types.js'
import type { Logger } from '../log/logger.js'
import type { AuthStats } from '../stats/auth-stats.js'

interface Counter {
  failures: number
  windowStart: number
  bannedUntil: number
}

/** Where failed logins are also counted across a fleet (fleet/fleet.ts); the local table stays in front. */
export interface SharedLockoutSink {
  fail(address: string, username: string | null, config: LockoutConfig): void
}

export class LockoutTable {
  readonly maxEntries: number
  readonly entries: LRUCache<string, Counter>

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries
    this.entries = new LRUCache<string, Counter>({ max: maxEntries })
  }
}

function userKey(username: string): string {
  return username.length <= 128 ? `u:${username}` : `u#${createHash('sha256').update(username).digest('base64')}`
}

export class Lockout {
  private readonly config: LockoutConfig
  private readonly table: LockoutTable
  private readonly stats: AuthStats
  private readonly byAddress: boolean
  private readonly byUsername: boolean
  private readonly shared: SharedLockoutSink | null
  private readonly logger: Logger | null

  constructor(config: LockoutConfig, table: LockoutTable, stats: AuthStats, shared: SharedLockoutSink | null = null, logger: Logger | null = null) {
    this.config = config
    this.table = table
    this.stats = stats
    this.shared = shared
    this.logger = logger
    this.byAddress = config.per.includes('address')
    this.byUsername = config.per.includes('username')
  }

  /** True while the address or the user name is banned. */
  isBanned(address: string, username: string | null, now = Date.now()): boolean {
    const entries = this.table.entries
    if (this.byAddress) {
      const c = entries.get(`a:${address}`)
      if (c !== undefined && c.bannedUntil > now) return true
    }
    if (this.byUsername && username !== null) {
      const c = entries.get(userKey(username))
      if (c !== undefined && c.bannedUntil > now) return true
    }
    return false
  }

  /** Counts a failed login; starts a ban when a counter reaches maxFailures. */
  fail(address: string, username: string | null, now = Date.now()): void {
    if (this.byAddress && this.count(`a:${address}`, 0, now)) this.banned('address', address, username)
    if (this.byUsername && username !== null && this.count(userKey(username), 1, now)) this.banned('username', address, username)
    this.stats.lockoutEntries = this.table.entries.size
    this.shared?.fail(address, username, this.config)
  }

  private banned(kind: 'address' | 'username', address: string, username: string | null): void {
    const { maxFailures, windowMs, banMs } = this.config
    this.logger?.warn({ audit: true, event: 'lockout_ban', kind, address, username: username ?? undefined, failures: maxFailures, windowMs, banMs },
      `${maxFailures} failed logins: ${kind === 'address' ? 'address' : 'user name'} banned`)
  }

  /** Counts one failure under `key`; true when it starts a ban. */
  private count(key: string, kind: 0 | 1, now: number): boolean {
    const entries = this.table.entries
    let c = entries.get(key)
    if (c === undefined) {
      c = { failures: 0, windowStart: now, bannedUntil: 0 }
      entries.set(key, c)
    } else if (now - c.windowStart > this.config.windowMs) {
      c.failures = 0
      c.windowStart = now
    }
    c.failures++
    if (c.failures >= this.config.maxFailures && c.bannedUntil <= now) {
      c.bannedUntil = now + this.config.banMs
      c.failures = 0
      c.windowStart = now
      this.stats.bans[kind]! += 1
      return true
    }
    return false
  }
}
