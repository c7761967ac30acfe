/**
 * `tls.resumption` of a listener: its defaults, its keys in their units, and each bad value refused
 * with the file, line, key and reason. The certificate files are real (made at test time): the
 * loader reads them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadServerTls } from '../../../src/config/tls-settings.js'
import { parseConfig } from '../../../src/config/load.js'
import { DEFAULT_TLS_RESUMPTION } from '../../../src/config/tls-resumption.js'
import { ConfigError } from '../../../src/errors.js'
import { makeTestCerts, type TestCerts } from '../../helpers/certs.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['device-1'])
})
afterAll(() => certs.cleanup())

function yaml(resumption: string | null): string {
  return [
    'listeners:',
    '  - name: secure',
    '    protocol: mqtts',
    '    port: 0',
    '    tls:',
    `      cert: ${certs.server.cert}`,
    `      key: ${certs.server.key}`,
    ...(resumption === null ? [] : [`      resumption: ${resumption}`]),
    'upstream: { host: 127.0.0.1, port: 1883 }',
  ].join('\n')
}

function refused(resumption: string): string {
  try {
    parseConfig(yaml(resumption), 'moat.yaml')
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).issues).toHaveLength(1)
    return (err as ConfigError).message
  }
  throw new Error('the config loaded, but it should not')
}

describe('tls.resumption', () => {
  it('is on by default: tickets for 2h under a key rotated every 12h, a 10000-session cache (absent from the compiled config)', () => {
    const tls = parseConfig(yaml(null), 'moat.yaml').listeners[0]!.tls!
    expect(tls.resumption).toBeUndefined()
    expect(DEFAULT_TLS_RESUMPTION).toEqual({ enabled: true, lifetimeMs: 7_200_000, rotateMs: 43_200_000, sessionCache: 0 })
    expect(parseConfig(yaml('{}'), 'moat.yaml').listeners[0]!.tls!.resumption).toEqual(DEFAULT_TLS_RESUMPTION)
  })

  it('takes durations with units, a cache size, and enabled: false', () => {
    const tls = parseConfig(yaml('{ lifetime: 30m, rotate: 6h, sessionCache: 0 }'), 'moat.yaml').listeners[0]!.tls!
    expect(tls.resumption).toEqual({ enabled: true, lifetimeMs: 1_800_000, rotateMs: 21_600_000, sessionCache: 0 })
    expect(parseConfig(yaml('{ enabled: false }'), 'moat.yaml').listeners[0]!.tls!.resumption).toMatchObject({ enabled: false })
  })

  it.each([
    ['{ lifetime: 7200 }', 'lifetime', /a duration needs a unit/],
    ['{ lifetime: 1500ms }', 'lifetime', /expected whole seconds, at least 1s/],
    ['{ lifetime: 200h, rotate: 300h }', 'lifetime', /at most 168h/],
    ['{ lifetime: 2h, rotate: 1h }', 'rotate', /must be at least lifetime \(7200s\): a ticket stops resuming when its key is rotated/],
    ['{ rotate: 500ms, lifetime: 1s }', 'rotate', /must be at least 1s/],
    ['{ sessionCache: -1 }', 'sessionCache', /must be 0 \(off\) or more/],
    ['{ sessionCache: 2000000 }', 'sessionCache', /at most 1000000/],
    ['{ enabled: "no" }', 'enabled', /expected true or false/],
    ['{ ttl: 1h }', 'ttl', /unknown key 'ttl'/],
  ])('refuses %s, naming the file, line and key', (value, key, reason) => {
    const message = refused(value)
    expect(message).toMatch(new RegExp(`^moat\\.yaml:8:\\d+ listeners\\.0\\.tls\\.resumption\\.${key}: `))
    expect(message).toMatch(reason)
  })

  it('fingerprints what decides who gets in: the same files give the same fingerprint, a new CRL another', () => {
    const base = { cert: certs.server.cert, key: certs.server.key, passphrase: null, ca: certs.ca, clientCert: 'required' as const, crl: [certs.crl], minVersion: 'TLSv1.2' as const, ciphers: null, ecdhCurve: null, sni: [] }
    const first = loadServerTls(base).fingerprint
    expect(first).toHaveLength(32)
    expect(loadServerTls(base).fingerprint.equals(first)).toBe(true)
    expect(loadServerTls({ ...base, clientCert: 'optional' }).fingerprint.equals(first)).toBe(false)
    const revoked = certs.revoke('device-1')
    expect(loadServerTls({ ...base, crl: [revoked] }).fingerprint.equals(first)).toBe(false)
  })
})
