import { describe, expect, it } from 'vitest'
import { Lockout, LockoutTable } from '../../../src/auth/lockout.js'
import { AuthStats } from '../../../src/stats/auth-stats.js'
import type { LockoutConfig } from '../../../src/config/types.js'

const config = (over: Partial<LockoutConfig> = {}): LockoutConfig => ({
  maxFailures: 3, windowMs: 1000, banMs: 5000, per: ['address', 'username'], maxEntries: 1000, reply: 'bad-credentials', ...over,
})

describe('Lockout', () => {
  it('bans an address after maxFailures within the window, until the ban ends', () => {
    const l = new Lockout(config(), new LockoutTable(1000), new AuthStats())
    for (let i = 0; i < 2; i++) l.fail('1.2.3.4', null, 100 + i)
    expect(l.isBanned('1.2.3.4', null, 150)).toBe(false)
    l.fail('1.2.3.4', null, 200)
    expect(l.isBanned('1.2.3.4', null, 201)).toBe(true)
    expect(l.isBanned('1.2.3.5', null, 201)).toBe(false)
    expect(l.isBanned('1.2.3.4', null, 5199)).toBe(true)
    expect(l.isBanned('1.2.3.4', null, 5201)).toBe(false)
  })

  it('bans a user name whatever the address', () => {
    const l = new Lockout(config({ per: ['username'] }), new LockoutTable(1000), new AuthStats())
    l.fail('a', 'alice', 1)
    l.fail('b', 'alice', 2)
    l.fail('c', 'alice', 3)
    expect(l.isBanned('d', 'alice', 4)).toBe(true)
    expect(l.isBanned('a', 'bob', 4)).toBe(false)
    expect(l.isBanned('a', null, 4)).toBe(false)
  })

  it('forgets failures older than the window', () => {
    const l = new Lockout(config(), new LockoutTable(1000), new AuthStats())
    l.fail('1.1.1.1', null, 0)
    l.fail('1.1.1.1', null, 10)
    l.fail('1.1.1.1', null, 2000) // a new window
    expect(l.isBanned('1.1.1.1', null, 2001)).toBe(false)
  })

  it('keeps bounded memory however many addresses and user names fail', () => {
    const table = new LockoutTable(100)
    const stats = new AuthStats()
    const l = new Lockout(config(), table, stats)
    for (let i = 0; i < 10_000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`, `user-${i}-${'x'.repeat(i % 500)}`, i)
    expect(table.entries.size).toBeLessThanOrEqual(100)
    expect(stats.lockoutEntries).toBeLessThanOrEqual(100)
  })

  it('counts bans by kind', () => {
    const stats = new AuthStats()
    const l = new Lockout(config({ maxFailures: 1 }), new LockoutTable(10), stats)
    l.fail('a', 'u', 0)
    expect([...stats.bans]).toEqual([1, 1])
  })
})
