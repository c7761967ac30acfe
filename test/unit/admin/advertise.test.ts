/** `admin.advertise`: read from the config (a bad URL names the key), and the URL an instance gives the fleet's directory. */
import { describe, expect, it } from 'vitest'
import { advertisedUrl } from '../../../src/admin/advertise.js'
import { configFromObject } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'

const base = { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1883 } }

function problems(admin: Record<string, unknown>): string {
  try {
    configFromObject({ ...base, admin })
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).message
  }
  throw new Error('the config loaded, but it should not')
}

describe('admin.advertise', () => {
  it('takes an http(s) URL without path, query or credentials', () => {
    expect(configFromObject({ ...base, admin: { host: '0.0.0.0', advertise: 'http://10.0.0.5:9464/' } }).admin).toEqual({ host: '0.0.0.0', port: 9464, advertise: 'http://10.0.0.5:9464' })
    for (const bad of ['10.0.0.5:9464', 'ftp://10.0.0.5', 'http://u:p@10.0.0.5:9464', 'http://10.0.0.5:9464/admin', 'http://10.0.0.5:9464?x=1']) {
      expect(problems({ advertise: bad }), bad).toMatch(/admin\.advertise: expected an http:\/\/ or https:\/\/ URL like http:\/\/10\.0\.0\.5:9464/)
    }
    expect(problems({ advertise: 9464 })).toMatch(/admin\.advertise: expected a URL/)
  })

  it('defaults to the bound address, and advertises nothing on a wildcard one', () => {
    expect(advertisedUrl({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 40123 })).toBe('http://127.0.0.1:40123')
    expect(advertisedUrl({ host: '::1', port: 9464 }, { host: '::1', port: 9464 })).toBe('http://[::1]:9464')
    expect(advertisedUrl({ host: '0.0.0.0', port: 9464 }, { host: '0.0.0.0', port: 9464 })).toBeNull()
    expect(advertisedUrl({ host: '::', port: 9464 }, { host: '::', port: 9464 })).toBeNull()
    expect(advertisedUrl({ host: '0.0.0.0', port: 9464, advertise: 'https://moat-a.mgmt:9464' }, { host: '0.0.0.0', port: 9464 })).toBe('https://moat-a.mgmt:9464')
  })
})
