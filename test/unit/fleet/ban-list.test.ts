import { describe, expect, it } from 'vitest'
import { BanList, banTarget, parseBanTarget } from '../../../src/fleet/ban-list.js'
import type { Ban } from '../../../src/fleet/shared-store.js'

function ban(kind: Ban['kind'], value: string, until: number | null = null): Ban {
  return { kind, value, until, reason: '', createdAt: 0, source: 'admin' }
}

describe('BanList', () => {
  const list = new BanList([ban('address', '10.1.0.0/16'), ban('address', '2001:db8::/32'), ban('address', '192.0.2.7'), ban('username', 'mallory', 5000), ban('clientId', 'dev-9', 3000)])

  it('matches addresses by CIDR, IPv4 in its mapped IPv6 form too, and exact addresses', () => {
    expect(list.address('10.1.200.3')?.value).toBe('10.1.0.0/16')
    expect(list.address('::ffff:10.1.2.3')?.value).toBe('10.1.0.0/16')
    expect(list.address('2001:db8:1::5')?.value).toBe('2001:db8::/32')
    expect(list.address('192.0.2.7')?.value).toBe('192.0.2.7')
    expect(list.address('192.0.2.8')).toBeNull()
    expect(list.address('10.2.0.1')).toBeNull()
  })

  it('matches user names and client ids exactly, and reports the earliest expiry', () => {
    expect(list.username('mallory')?.kind).toBe('username')
    expect(list.username('Mallory')).toBeNull()
    expect(list.username(null)).toBeNull()
    expect(list.clientId('dev-9')?.kind).toBe('clientId')
    expect(list.match('127.0.0.1', 'alice', 'dev-9')?.value).toBe('dev-9')
    expect(list.match('127.0.0.1', 'alice', 'dev-1')).toBeNull()
    expect(list.nextExpiry).toBe(3000)
    expect(BanList.EMPTY.nextExpiry).toBe(Infinity)
  })
})

describe('ban targets', () => {
  it('parses addresses, CIDRs, user:NAME and client:ID, and writes them back', () => {
    for (const t of ['10.0.0.1', '10.0.0.0/8', '2001:db8::/32', 'user:alice', 'client:dev:1']) expect(banTarget(parseBanTarget(t))).toBe(t)
    expect(parseBanTarget('client:dev:1')).toEqual({ kind: 'clientId', value: 'dev:1' })
  })

  it('refuses anything else, naming it', () => {
    expect(() => parseBanTarget('alice')).toThrow("'alice' is not an address, a CIDR, user:NAME or client:ID")
    expect(() => parseBanTarget('user:')).toThrow(/is not an address/)
    expect(() => parseBanTarget('10.0.0.0/40')).toThrow(/bad prefix length/)
  })
})
