/**
 * Fleet decisions per failure mode, with a store whose reachability the test sets: a LocalStore
 * that reports itself shared (kind 'redis') and throws while "down", as a RedisStore does with its
 * offline queue disabled. The real Redis paths are in the integration suite.
 */
import { describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { Fleet, SLOT_ADDRESS, SLOT_USER, type BannableSession } from '../../../src/fleet/fleet.js'
import { LocalStore, type Ban } from '../../../src/fleet/shared-store.js'
import { ClusterStats } from '../../../src/stats/fleet-stats.js'
import { configFromObject } from '../../../src/config/load.js'
import { PolicyStore } from '../../../src/policy/store.js'

class SwitchableStore extends LocalStore {
  override readonly kind = 'redis' as const
  down = false
  override get up(): boolean {
    return !this.down
  }
  override acquire(key: string, max: number): Promise<boolean> {
    return this.down ? Promise.reject(new Error('unreachable')) : super.acquire(key, max)
  }
  override take(key: string, capacity: number, refillPerMs: number): Promise<boolean> {
    return this.down ? Promise.reject(new Error('unreachable')) : super.take(key, capacity, refillPerMs)
  }
}

function fleet(onRedisDown: Record<string, string>, sessions: BannableSession[] = [], store = new SwitchableStore(), auth: Record<string, unknown> = {}): { fleet: Fleet; store: SwitchableStore; stats: ClusterStats } {
  const config = configFromObject({
    listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }],
    upstream: { host: '127.0.0.1', port: 1883 },
    auth: { anonymous: true, lockout: { maxFailures: 3 }, ...auth },
    limits: { connections: { perUsername: 2, perAddress: 10, perAddressRate: '100/s' } },
    cluster: { redis: { url: 'redis://127.0.0.1:1', onRedisDown } },
  })
  const stats = new ClusterStats()
  return { fleet: new Fleet(store, new PolicyStore(config), stats, pino({ level: 'silent' }), () => sessions), store, stats }
}

const ban = (kind: Ban['kind'], value: string, source = 'admin'): Ban => ({ kind, value, until: null, reason: '', createdAt: Date.now(), source })

describe('Fleet', () => {
  it('counts user and address slots fleet-wide and releases them', async () => {
    const { fleet: f, store } = fleet({})
    expect(f.needsAdmission('alice')).toBe(true)
    expect(await f.admit('10.0.0.1', 'alice')).toEqual({ refusal: null, slots: SLOT_ADDRESS | SLOT_USER })
    expect(await f.admit('10.0.0.2', 'alice')).toEqual({ refusal: null, slots: SLOT_ADDRESS | SLOT_USER })
    expect(await f.admit('10.0.0.3', 'alice')).toMatchObject({ refusal: { why: 'too_many_connections', reason: 0x97 }, slots: 0 })
    // The refused attempt gave back the address slot it had taken.
    expect(store.size.slots).toBe(3)
    f.release('10.0.0.1', 'alice', SLOT_ADDRESS | SLOT_USER)
    expect(await f.admit('10.0.0.3', 'alice')).toMatchObject({ refusal: null })
  })

  it('connections: local admits on local limits while the store is down, counted', async () => {
    const { fleet: f, store, stats } = fleet({ connections: 'local' })
    store.down = true
    expect(await f.admit('10.0.0.1', 'alice')).toEqual({ refusal: null, slots: 0 })
    expect(stats.localFallbacks).toBe(1)
    expect(f.atConnect('10.0.0.1', 'alice', 'c1')).toBeNull()
  })

  it('connections: local holds the slots of a session admitted while the store is down (written when it is back), released at close', async () => {
    class HoldingStore extends SwitchableStore {
      readonly holds: string[] = []
      hold(key: string): void {
        this.holds.push(key)
        this.acquireNow(key, Infinity) // what the resync writes back: the slot counts once the store is up
      }
    }
    const store = new HoldingStore()
    const { fleet: f, stats } = fleet({ connections: 'local' }, [], store)
    store.down = true
    const during = await f.admit('10.0.0.1', 'alice')
    expect(during).toEqual({ refusal: null, slots: SLOT_ADDRESS | SLOT_USER })
    expect(store.holds).toEqual(['a:10.0.0.1', 'u:alice'])
    expect(stats.localFallbacks).toBe(1)
    // Anonymous: only the address slot.
    expect(await f.admit('10.0.0.2', null)).toEqual({ refusal: null, slots: SLOT_ADDRESS })
    store.down = false
    // Back: alice holds 1 (admitted during the outage) of perUsername 2: one more, then refused.
    expect(await f.admit('10.0.0.3', 'alice')).toMatchObject({ refusal: null })
    expect(await f.admit('10.0.0.4', 'alice')).toMatchObject({ refusal: { why: 'too_many_connections', reason: 0x97 } })
    // The session admitted during the outage ends: its slots are released like any other.
    f.release('10.0.0.1', 'alice', during.slots)
    expect(await f.admit('10.0.0.4', 'alice')).toMatchObject({ refusal: null })
  })

  it('connections: fail-closed refuses as server unavailable while the store is down', async () => {
    const { fleet: f, store } = fleet({ connections: 'fail-closed' })
    store.down = true
    expect(await f.admit('10.0.0.1', 'alice')).toMatchObject({ refusal: { why: 'store_unavailable', reason: 0x88 } })
    store.down = false
    expect(await f.admit('10.0.0.1', 'alice')).toMatchObject({ refusal: null })
  })

  it('bans / lockout: fail-closed refuse new CONNECTs while the store is down', () => {
    const bans = fleet({ bans: 'fail-closed' })
    bans.store.down = true
    expect(bans.fleet.atConnect('10.0.0.1', null, 'c1')).toMatchObject({ why: 'store_unavailable' })
    const lockout = fleet({ lockout: 'fail-closed' })
    lockout.store.down = true
    expect(lockout.fleet.atConnect('10.0.0.1', 'alice', 'c1')).toMatchObject({ why: 'store_unavailable' })
    expect(lockout.fleet.atConnect('10.0.0.1', null, 'c1')).toBeNull() // no user name: no password to guess
  })

  it('answers a lockout ban as the lockout reply says, an admin ban with Banned', async () => {
    const { fleet: f, store } = fleet({})
    await store.addBan(ban('username', 'mallory', 'lockout'))
    await store.addBan(ban('clientId', 'bad-device'))
    expect(f.atConnect('10.0.0.1', 'mallory', 'x')).toMatchObject({ why: 'banned', reason: 0x86 }) // reply: bad-credentials (default)
    expect(f.atConnect('10.0.0.1', 'alice', 'bad-device')).toMatchObject({ why: 'banned', reason: 0x8a })
    expect(f.banCount).toBe(2)
    // badCredentialsReply: not-authorized: a lockout ban answers like a wrong password then, 0x87.
    const na = fleet({}, [], new SwitchableStore(), { badCredentialsReply: 'not-authorized' })
    await na.store.addBan(ban('username', 'mallory', 'lockout'))
    expect(na.fleet.atConnect('10.0.0.1', 'mallory', 'x')).toMatchObject({ why: 'banned', reason: 0x87 })
  })

  it('a new admin ban closes the sessions it matches; a lockout ban does not', async () => {
    const closed: string[] = []
    const session = (username: string, clientId: string): BannableSession => ({ state: { remoteAddress: '10.9.0.1', username, clientId }, banned: () => { closed.push(clientId) } })
    const sessions = [session('alice', 'a1'), session('bob', 'b1'), session('carol', 'c1')]
    const { fleet: f, store, stats } = fleet({}, sessions)
    await store.addBan(ban('username', 'alice', 'lockout'))
    expect(closed).toEqual([])
    await store.addBan(ban('username', 'bob'))
    expect(closed).toEqual(['b1'])
    await store.addBan(ban('address', '10.9.0.0/16'))
    expect(closed).toContain('c1')
    expect(stats.sessionsBanned).toBeGreaterThanOrEqual(3)
    expect(f.addressBanned('10.9.3.4')).toBe(true)
    expect(f.addressBanned('10.8.3.4')).toBe(false)
  })

  it('counts failed logins fleet-wide and bans at maxFailures (source lockout)', async () => {
    const { fleet: f, store } = fleet({})
    const lockout = { maxFailures: 3, windowMs: 60_000, banMs: 60_000, per: ['username'] as const, maxEntries: 10, reply: 'bad-credentials' as const }
    for (let i = 0; i < 3; i++) f.fail('10.0.0.1', 'victim', { ...lockout, per: [...lockout.per] })
    await expect.poll(() => store.bans().map((b) => `${b.kind}:${b.value}:${b.source}`)).toEqual(['username:victim:lockout'])
  })
})
