import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PolicyStore } from '../../../src/policy/store.js'
import { loadConfig, parseConfig } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'

const head = 'listeners:\n  - { name: mqtt, protocol: mqtt, port: 1883 }\nupstream: { host: 127.0.0.1, port: 1884 }\n'

function issues(text: string, file = 'moat.yaml'): Array<{ path: string; message: string; line?: number }> {
  try {
    parseConfig(head + text, file)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, message: i.message, line: i.line }))
    throw err
  }
  return []
}

describe('auth config', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-auth-config-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('without an auth section: anonymous off, no backends, so every client is refused (fail closed)', () => {
    const config = parseConfig(head, 'moat.yaml')
    expect(config.auth.anonymous).toBe(false)
    expect(config.auth.backends).toEqual([])
  })

  it('fills the documented defaults', () => {
    const config = parseConfig(head + 'auth:\n  backends:\n    - { type: http, url: "http://auth.local/check" }\n', 'moat.yaml')
    expect(config.auth).toEqual({
      anonymous: false,
      backends: [{ type: 'http', url: 'http://auth.local/check', timeoutMs: 2000, connections: 16, maxPending: 1000, headers: {}, cache: { ttlMs: 30_000, negativeTtlMs: 5000, max: 10_000 } }],
      timeoutMs: 5000,
      clientId: { pattern: null, maxLength: 256, bind: 'none', separator: ':', takeover: 'same-identity' },
      lockout: { maxFailures: 10, windowMs: 60_000, banMs: 300_000, per: ['address', 'username'], maxEntries: 100_000, reply: 'bad-credentials' },
      upstreamCredentials: 'passthrough',
      unknownCredentials: 'refuse',
      badCredentialsReply: 'bad-credentials',
    })
  })

  it('reads unknownCredentials and badCredentialsReply', () => {
    const auth = parseConfig(head + 'auth:\n  anonymous: true\n  unknownCredentials: broker\n  badCredentialsReply: not-authorized\n', 'moat.yaml').auth
    expect(auth).toMatchObject({ unknownCredentials: 'broker', badCredentialsReply: 'not-authorized' })
  })

  it.each([
    ['unknownCredentials', 'unknownCredentials: pass', /expected refuse or broker/],
    ['badCredentialsReply', 'badCredentialsReply: 5', /expected bad-credentials or not-authorized/],
    ['badCredentialsReply', 'badCredentialsReply: banned', /expected bad-credentials or not-authorized/],
  ])('refuses a bad %s, naming the key', (key, line, message) => {
    const found = issues(`auth:\n  ${line}\n`)
    expect(found).toHaveLength(1)
    expect(found[0]).toMatchObject({ path: `auth.${key}`, line: 5 })
    expect(found[0]!.message).toMatch(message)
  })

  it('refuses unknownCredentials: broker unless the broker sees the credentials the client sent (upstreamCredentials: passthrough)', () => {
    for (const upstream of ['strip', '{ username: shared, password: pw }']) {
      const found = issues(`auth:\n  unknownCredentials: broker\n  upstreamCredentials: ${upstream}\n`)
      expect(found).toHaveLength(1)
      expect(found[0]).toMatchObject({ path: 'auth.unknownCredentials', message: expect.stringMatching(/upstreamCredentials: passthrough/) })
    }
    expect(issues('auth:\n  unknownCredentials: broker\n  upstreamCredentials: passthrough\n')).toEqual([])
  })

  it('resolves paths against the config file directory and reads key files', () => {
    writeFileSync(join(dir, 'jwt.secret'), 'from-a-file\n')
    writeFileSync(join(dir, 'broker.pw'), 'shared-pw\n')
    const file = join(dir, 'moat.yaml')
    writeFileSync(file, head + [
      'auth:',
      '  backends:',
      '    - { type: file, path: passwd, cache: { ttl: 1m } }',
      '    - { type: jwt, secretFile: jwt.secret, audience: moat }',
      '  upstreamCredentials: { username: shared, passwordFile: broker.pw }',
    ].join('\n'))
    const auth = loadConfig(file).auth
    expect(auth.backends[0]).toEqual({ type: 'file', path: join(dir, 'passwd'), cache: { ttlMs: 60_000, negativeTtlMs: 5000, max: 10_000 } })
    expect(auth.backends[1]).toMatchObject({ type: 'jwt', secret: 'from-a-file', audience: ['moat'], algorithms: ['HS256', 'HS384', 'HS512'] })
    expect(auth.upstreamCredentials).toEqual({ username: 'shared', password: 'shared-pw' })
  })

  it.each([
    ['an unknown backend type', '    - { type: ldap }', 'auth.backends.0.type', /type file, http, jwt or certificate/],
    ['a jwt backend with two keys', '    - { type: jwt, secret: a, jwksUrl: "http://x/jwks" }', 'auth.backends.0', /exactly one of secret, secretFile, publicKey, jwksUrl/],
    ['an http backend with a bad URL', '    - { type: http, url: "ftp://x" }', 'auth.backends.0.url', /http:\/\/ or https:\/\//],
    ['a bare timeout', '    - { type: http, url: "http://x", timeout: 5 }', 'auth.backends.0.timeout', /needs a unit/],
    ['a certificate field that does not exist', '    - { type: certificate, usernameFrom: ou }', 'auth.backends.0.usernameFrom', /cn, subject, san-dns/],
  ])('refuses %s, naming the key', (_what, line, path, message) => {
    const found = issues(`auth:\n  backends:\n${line}\n`)
    expect(found).toHaveLength(1)
    expect(found[0]!.path).toBe(path)
    expect(found[0]!.message).toMatch(message)
    expect(found[0]!.line).toBe(6)
  })

  it('refuses a client-id pattern that is not a regular expression', () => {
    expect(issues('auth:\n  clientId: { pattern: "([a-z" }\n')[0]).toMatchObject({ path: 'auth.clientId.pattern', message: 'not a valid regular expression' })
  })

  it('a password file that cannot be read is an error naming the config file, key and path', () => {
    const file = join(dir, 'missing.yaml')
    writeFileSync(file, head + 'auth:\n  backends:\n    - { type: file, path: nowhere/passwd }\n')
    const config = loadConfig(file)
    expect(() => new PolicyStore(config)).toThrow(ConfigError)
    expect(() => new PolicyStore(config)).toThrow(`${file} auth.backends.0.path: cannot read the password file ${join(dir, 'nowhere/passwd')}: no such file`)
  })

  it('a malformed password file line is an error naming its line', () => {
    const file = join(dir, 'bad.yaml')
    writeFileSync(join(dir, 'bad-passwd'), 'alice:plaintext\n')
    writeFileSync(file, head + 'auth:\n  backends:\n    - { type: file, path: bad-passwd }\n')
    expect(() => new PolicyStore(loadConfig(file))).toThrow(/bad-passwd:1: unsupported or malformed hash for user 'alice'/)
  })
})
