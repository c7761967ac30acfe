import { describe, expect, it } from 'vitest'
import { configFromObject } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'

const base = { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1883 } }

function problems(extra: Record<string, unknown>): string {
  try {
    configFromObject({ ...base, ...extra })
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).message
  }
  throw new Error('the config loaded, but it should not')
}

describe('cluster config', () => {
  it('is absent by default: everything stays in process', () => {
    expect(configFromObject(base).cluster).toBeUndefined()
  })

  it('compiles url mode with its defaults (failure modes: local)', () => {
    const c = configFromObject({ ...base, cluster: { redis: { url: 'rediss://:secret@redis.example:6380/2' } } })
    expect(c.cluster).toEqual({
      redis: {
        mode: 'url', url: 'rediss://:secret@redis.example:6380/2', sentinel: null, nodes: [], tls: false, passwordFile: null,
        prefix: 'moat', commandTimeoutMs: 500, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' },
      },
    })
  })

  it('compiles sentinel and cluster modes, with node lists as host:port', () => {
    const s = configFromObject({ ...base, cluster: { redis: { sentinel: { name: 'mymaster', nodes: ['10.0.0.1:26379', '[::1]:26380'] }, passwordFile: '/run/secrets/redis', tls: true, onRedisDown: { connections: 'fail-closed' } } } })
    expect(s.cluster?.redis).toMatchObject({ mode: 'sentinel', sentinel: { name: 'mymaster', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: '::1', port: 26380 }] }, tls: true, passwordFile: '/run/secrets/redis', onRedisDown: { connections: 'fail-closed', bans: 'local', lockout: 'local' } })
    const k = configFromObject({ ...base, cluster: { redis: { cluster: { nodes: ['r1:7000', 'r2:7001'] }, prefix: 'edge-eu' } } })
    expect(k.cluster?.redis).toMatchObject({ mode: 'cluster', nodes: [{ host: 'r1', port: 7000 }, { host: 'r2', port: 7001 }], prefix: 'edge-eu' })
  })

  it('refuses zero or several locations, bad URLs, bad nodes, bad modes and unknown keys, naming the key', () => {
    expect(problems({ cluster: { redis: {} } })).toMatch(/cluster\.redis: give exactly one of url, sentinel or cluster/)
    expect(problems({ cluster: { redis: { url: 'redis://a', cluster: { nodes: ['a:1'] } } } })).toMatch(/give exactly one of url, sentinel or cluster/)
    expect(problems({ cluster: { redis: { url: 'http://a' } } })).toMatch(/cluster\.redis\.url: expected a redis:\/\/ or rediss:\/\/ URL/)
    expect(problems({ cluster: { redis: { cluster: { nodes: ['a:99999'] } } } })).toMatch(/cluster\.redis\.cluster\.nodes\.0: 'a:99999' is not host:port/)
    expect(problems({ cluster: { redis: { url: 'redis://a', onRedisDown: { connections: 'open' } } } })).toMatch(/cluster\.redis\.onRedisDown\.connections: expected fail-closed or local/)
    expect(problems({ cluster: { redis: { url: 'redis://a', pasword: 'x' } } })).toMatch(/cluster\.redis\.pasword: unknown key 'pasword'/)
    expect(problems({ cluster: { redis: { url: 'redis://a', prefix: 'a b' } } })).toMatch(/cluster\.redis\.prefix/)
  })

  it('takes admin.token (at least 16 characters) and admin.tokenFile', () => {
    expect(configFromObject({ ...base, admin: { token: 'x'.repeat(16) } }).admin).toEqual({ host: '127.0.0.1', port: 9464, token: 'x'.repeat(16) })
    expect(configFromObject({ ...base, admin: { tokenFile: '/run/secrets/moat-admin' } }).admin).toEqual({ host: '127.0.0.1', port: 9464, tokenFile: '/run/secrets/moat-admin' })
    expect(problems({ admin: { token: 'short' } })).toMatch(/admin\.token: a token is at least 16 characters/)
  })
})
