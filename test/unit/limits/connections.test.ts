import { describe, expect, it } from 'vitest'
import { PolicyStore } from '../../../src/policy/store.js'
import type { MoatConfig } from '../../../src/config/types.js'
import { ConnectionLimiter } from '../../../src/limits/connections.js'
import { OverloadMonitor } from '../../../src/limits/overload.js'
import { limitsFrom, testConfig } from '../../helpers/moat.js'

const config = (limits: Record<string, unknown>): MoatConfig => ({ ...testConfig({ host: '127.0.0.1', port: 1 }), limits: limitsFrom(limits) })

function limiter(limits: Record<string, unknown>): { limiter: ConnectionLimiter; policy: PolicyStore; overload: OverloadMonitor } {
  const policy = new PolicyStore(config(limits), [])
  const overload = new OverloadMonitor(policy)
  return { limiter: new ConnectionLimiter(policy, overload), policy, overload }
}

describe('ConnectionLimiter', () => {
  it('a flood from 100,000 spoofed addresses keeps at most trackedAddresses rate buckets', () => {
    const { limiter: l } = limiter({ connections: { perAddressRate: '1/m', trackedAddresses: 500 } })
    for (let i = 0; i < 100_000; i++) {
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
      if (l.admit(address) === null) l.release(address)
    }
    expect(l.tracked).toEqual({ addressBuckets: 500, addresses: 0, users: 0 })
  })

  it('counts open connections per address exactly and forgets an address when its last connection ends', () => {
    const { limiter: l } = limiter({ connections: { perAddress: 2, total: 3 } })
    expect(l.admit('a')).toBeNull()
    expect(l.admit('a')).toBeNull()
    expect(l.admit('a')).toBe('too_many_connections')
    expect(l.admit('b')).toBeNull()
    expect(l.admit('c')).toBe('too_many_connections') // total
    l.release('a')
    expect(l.admit('c')).toBeNull()
    l.release('a')
    l.release('b')
    l.release('c')
    expect(l.tracked.addresses).toBe(0)
    expect(l.refusedFor('too_many_connections')).toBe(2)
  })

  it('new connections per unit of time: in total across addresses, and per address independently', () => {
    const total = limiter({ connections: { rate: '2/m' } }).limiter
    expect([total.admit('a'), total.admit('b'), total.admit('c')]).toEqual([null, null, 'connection_rate'])
    const perAddress = limiter({ connections: { perAddressRate: '2/m' } }).limiter
    expect([perAddress.admit('a'), perAddress.admit('a'), perAddress.admit('a'), perAddress.admit('b')]).toEqual([null, null, 'connection_rate', null])
    // A refusal for another reason costs no token.
    const both = limiter({ connections: { perAddressRate: '2/m', perAddress: 1 } }).limiter
    expect([both.admit('a'), both.admit('a')]).toEqual([null, 'too_many_connections'])
    both.release('a')
    expect(both.admit('a')).toBeNull()
  })

  it('per user name', () => {
    const { limiter: l } = limiter({ connections: { perUsername: 1 } })
    expect(l.admitUser('u')).toBe(true)
    expect(l.admitUser('u')).toBe(false)
    l.releaseUser('u')
    expect(l.admitUser('u')).toBe(true)
    l.releaseUser('u')
    expect(l.tracked.users).toBe(0)
  })

  it('follows a reload: new limits apply to the next connection, open counts are kept', () => {
    const { limiter: l, policy } = limiter({ connections: { perAddress: 5 } })
    expect(l.admit('a')).toBeNull()
    expect(l.admit('a')).toBeNull()
    policy.swap(config({ connections: { perAddress: 2 } }))
    expect(l.admit('a')).toBe('too_many_connections')
  })

  it('refuses everything while overloaded', () => {
    const { limiter: l, overload } = limiter({})
    overload.overloaded = true
    expect(l.admit('a')).toBe('server_overloaded')
  })
})

describe('OverloadMonitor', () => {
  it('is overloaded while the event loop lags past eventLoopLag, and recovers', async () => {
    const policy = new PolicyStore(config({ overload: { eventLoopLag: '150ms', sampleInterval: '10s' } }), [])
    const monitor = new OverloadMonitor(policy)
    monitor.start()
    try {
      await new Promise<void>((resolve) => setTimeout(resolve, 30)) // the histogram's timer is armed
      const until = performance.now() + 500
      while (performance.now() < until) { /* block the event loop */ }
      await new Promise<void>((resolve) => setImmediate(resolve))
      await new Promise<void>((resolve) => setTimeout(resolve, 30)) // let the histogram's own timer record the stall
      monitor.sample()
      expect(monitor.lagMs).toBeGreaterThan(150)
      expect(monitor.overloaded).toBe(true)
      await new Promise<void>((resolve) => setTimeout(resolve, 50))
      monitor.sample()
      expect(monitor.overloaded).toBe(false)
    } finally {
      monitor.stop()
    }
  })

  it('is overloaded past the memory ceiling', () => {
    const policy = new PolicyStore(config({ overload: { memory: '1MiB' } }), [])
    const monitor = new OverloadMonitor(policy)
    monitor.sample()
    expect(monitor.rss).toBeGreaterThan(1024 * 1024)
    expect(monitor.overloaded).toBe(true)
  })
})
