import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { DENY_ALL_AUTH } from '../../../src/config/auth-schema.js'
import { configFromObject, loadConfig } from '../../../src/config/load.js'
import { ConfigError, type ConfigIssue } from '../../../src/errors.js'

const fixture = (name: string): string => fileURLToPath(new URL(`../../fixtures/configs/${name}`, import.meta.url))
const policy = (name: string): string => fileURLToPath(new URL(`../../../policies/${name}`, import.meta.url))

function issuesOf(file: string): { code: string; issues: readonly ConfigIssue[]; message: string } {
  try {
    loadConfig(file)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    const e = err as ConfigError
    return { code: e.code, issues: e.issues, message: e.message }
  }
  throw new Error(`${file} loaded, but it should not`)
}

/** Every limit at its default: rates, quotas, payload caps and overload protection are off. */
const defaultLimits = {
  maxPacketSize: 262_144,
  connectTimeoutMs: 10_000,
  maxPayload: null,
  payload: [],
  messageRate: null,
  byteRate: null,
  packetRate: null,
  burstMs: 100,
  onExcess: 'throttle',
  perUsername: null,
  topics: [],
  connections: { rate: null, perAddressRate: null, perAddress: null, perUsername: null, total: null, trackedAddresses: 10_000 },
  maxSubscriptions: null,
  maxInflight: null,
  maxKeepalive: null,
  overload: { eventLoopLagMs: null, memory: null, sampleMs: 500 },
}
/** What a plain MQTT listener has for the TLS, WebSocket and PROXY protocol keys. */
const plainListener = { tls: null, path: '', origins: null, pingIntervalMs: 0, proxyProtocol: false, trustedProxies: [] }

describe('loadConfig: valid files', () => {
  it('loads every key and converts units', () => {
    const config = loadConfig(fixture('valid/full.yaml'))
    expect(config).toEqual({
      file: fixture('valid/full.yaml'),
      listeners: [
        { name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 1883, ...plainListener },
        { name: 'internal', protocol: 'mqtt', host: '0.0.0.0', port: 2883, ...plainListener },
      ],
      upstream: { host: 'broker.internal', port: 1884, connectTimeoutMs: 1500, tls: null, proxyProtocol: null },
      admin: { host: '127.0.0.1', port: 9500 },
      limits: { ...defaultLimits, maxPacketSize: 1_048_576, connectTimeoutMs: 3000 },
      shutdown: { gracePeriodMs: 60_000 },
      log: { level: 'debug', format: 'json', file: null },
      acl: {
        outbound: true,
        overlap: 'filter',
        shadow: null,
        rules: [
          { name: 'own-tree', effect: 'allow', publish: true, subscribe: true, topic: 'devices/{client_id}/#', users: null, groups: null, listeners: null, sources: null, anonymous: null, maxQos: 1, retain: false, onDeny: 'reject' },
          { name: 'acl.rules.1', effect: 'deny', publish: false, subscribe: true, topic: 'devices/+/secrets', users: ['ops'], groups: null, listeners: null, sources: ['10.0.0.0/8'], anonymous: null, maxQos: 2, retain: true, onDeny: 'disconnect' },
          // The Mosquitto file: its deny line first, then the rest in file order.
          expect.objectContaining({ name: `${fixture('valid/broker.acl')}:6`, effect: 'deny', publish: true, subscribe: true, topic: 'alice/private', users: ['alice'] }),
          expect.objectContaining({ name: `${fixture('valid/broker.acl')}:2`, effect: 'allow', publish: false, subscribe: true, topic: 'public/#', users: null, anonymous: true }),
          expect.objectContaining({ name: `${fixture('valid/broker.acl')}:5`, effect: 'allow', publish: true, subscribe: true, topic: 'alice/#', users: ['alice'] }),
          expect.objectContaining({ name: `${fixture('valid/broker.acl')}:8`, effect: 'allow', publish: true, subscribe: false, topic: 'sensors/{username}/{client_id}', users: null, anonymous: null }),
        ],
      },
      auth: DENY_ALL_AUTH, // no auth section: nobody gets in
      workers: 1,
      coalescing: { waitUs: 150, abovePerSecond: 20_000 },
      virtualPatches: { 'cve-2017-7650': true, 'cve-2018-12543': true, 'cve-2019-11779': true, 'cve-2021-41039': true },
    })
  })

  it('returns a deeply frozen config', () => {
    const config = loadConfig(fixture('valid/full.yaml'))
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.listeners[0])).toBe(true)
    expect(Object.isFrozen(config.limits)).toBe(true)
  })

  it('fills defaults and turns the admin endpoint off when its section is absent', () => {
    const config = configFromObject({ listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }], upstream: { host: '127.0.0.1', port: 1884 } })
    expect(config.admin).toBeNull()
    expect(config.limits).toEqual(defaultLimits)
    expect(config.upstream.connectTimeoutMs).toBe(5000)
    expect(config.shutdown.gracePeriodMs).toBe(10_000)
    expect(config.log.level).toBe('info')
  })

  it('loads both example policies', () => {
    expect(loadConfig(policy('example.yaml')).admin).toEqual({ host: '127.0.0.1', port: 9464 })
    const minimal = loadConfig(policy('minimal.yaml'))
    expect(minimal.listeners).toHaveLength(1)
    expect(minimal.admin).toBeNull()
    expect(minimal.limits.messageRate).toEqual({ count: 100, perMs: 1000 })
  })
})

describe('loadConfig: each problem names the file, line, key and reason', () => {
  it.each([
    ['unknown-top-level.yaml', 'listners', 4, /unknown key 'listners'/],
    ['unknown-nested.yaml', 'upstream.timeout', 6, /unknown key 'timeout'/],
    ['auth-unknown-key.yaml', 'auth.backends.0.ttl', 7, /unknown key 'ttl'/],
    ['mqtts-listener.yaml', 'listeners.0.tls', 2, /an mqtts listener needs tls: \{ cert, key \}/],
    ['bad-size.yaml', 'limits.maxPacketSize', 5, /expected a size like 256KiB .* got "12 parsecs"/],
    ['bare-duration.yaml', 'limits.connectTimeout', 5, /needs a unit .* write 30s or 30ms/],
    ['duplicate-listener.yaml', 'listeners.1.name', 3, /duplicate listener name 'mqtt'/],
    ['missing-upstream.yaml', 'upstream', 1, /is required/],
    ['wrong-type.yaml', 'listeners', 1, /^expected a list of listeners$/],
    ['acl-placeholder.yaml', 'acl.0.topic', 5, /unknown placeholder \{clientid\}/],
    ['acl-both-effects.yaml', 'acl.rules.1', 7, /exactly one of `allow` or `deny`/],
    ['acl-bad-filter.yaml', 'acl.1.topic', 6, /'a\/#\/b' is not a valid topic filter/],
  ])('%s', (file, path, line, reason) => {
    const { code, issues, message } = issuesOf(fixture(`invalid/${file}`))
    expect(code).toBe('MOAT_ERR_CONFIG_INVALID')
    expect(issues).toHaveLength(1)
    expect(issues[0]).toMatchObject({ file: fixture(`invalid/${file}`), path, line })
    expect(issues[0]!.message).toMatch(reason)
    expect(message).toContain(`${fixture(`invalid/${file}`)}:${line}:`)
    expect(message).toContain(`${path}: `)
  })

  it('names the line of a bad Mosquitto acl_file', () => {
    const { code, issues } = issuesOf(fixture('invalid/acl-mosquitto-file.yaml'))
    expect(code).toBe('MOAT_ERR_CONFIG_INVALID')
    expect(issues).toEqual([expect.objectContaining({ file: fixture('invalid/bad.acl'), line: 3, message: expect.stringMatching(/unknown keyword 'topik'/) })])
  })

  it('reports a YAML syntax error with its line', () => {
    const { code, issues } = issuesOf(fixture('invalid/syntax.yaml'))
    expect(code).toBe('MOAT_ERR_CONFIG_SYNTAX')
    expect(issues[0]!.message).toMatch(/YAML syntax/)
    expect(issues[0]!.line).toBeGreaterThanOrEqual(2)
  })

  it('reports an empty file clearly', () => {
    const { issues } = issuesOf(fixture('invalid/empty.yaml'))
    expect(issues[0]!.message).toMatch(/the config is empty: at least `listeners` and `upstream` are required/)
  })

  it('reports every problem at once', () => {
    const { issues } = issuesOf(fixture('invalid/several.yaml'))
    expect(issues.map((i) => [i.path, i.line])).toEqual(expect.arrayContaining([
      ['listeners.0.port', 2], ['upstream.host', 3], ['log.level', 4],
    ]))
    expect(issues).toHaveLength(3)
  })

  it('reports a missing file with MOAT_ERR_CONFIG_READ', () => {
    const { code, message } = issuesOf('/nonexistent/moat.yaml')
    expect(code).toBe('MOAT_ERR_CONFIG_READ')
    expect(message).toMatch(/\/nonexistent\/moat\.yaml cannot read the config: no such file/)
  })
})

describe('scheduling', () => {
  const base = { listeners: [{ name: 'l', protocol: 'mqtt', port: 0 }], upstream: { host: 'h', port: 1 } }

  it('is absent unless set (the policy Moat was started with is left alone), and takes normal or batch', () => {
    expect(configFromObject(base).scheduling).toBeUndefined()
    expect(configFromObject({ ...base, scheduling: 'batch' }).scheduling).toBe('batch')
    expect(configFromObject({ ...base, scheduling: 'normal' }).scheduling).toBe('normal')
  })

  it('names the key and the choices when the value is not one of them', () => {
    expect(() => configFromObject({ ...base, scheduling: 'realtime' })).toThrow(/scheduling: expected normal or batch/)
  })
})

describe('coalescing', () => {
  const base = { listeners: [{ name: 'l', protocol: 'mqtt', port: 0 }], upstream: { host: 'h', port: 1 } }

  it('defaults to 200 µs waits from 20,000 packets per second, and takes both keys', () => {
    expect(configFromObject(base).coalescing).toEqual({ waitUs: 200, abovePerSecond: 20_000 })
    expect(configFromObject({ ...base, coalescing: { wait: '0.5ms', above: '3000/m' } }).coalescing).toEqual({ waitUs: 500, abovePerSecond: 50 })
    expect(configFromObject({ ...base, coalescing: { wait: 0 } }).coalescing).toEqual({ waitUs: 0, abovePerSecond: 20_000 })
  })

  it.each([
    [{ wait: 300 }, /coalescing\.wait: a wait needs a unit \(us, ms\): write 300us or 300ms/],
    [{ wait: '20ms' }, /coalescing\.wait: "20ms" is too long \(at most 10ms\)/],
    [{ wait: '1s' }, /coalescing\.wait: expected a wait like 200us/],
    [{ above: '0/s' }, /coalescing\.above: a rate must be above zero/],
    [{ waits: '1ms' }, /coalescing.waits: unknown key 'waits'/],
  ])('names the key and the reason: %j', (section, reason) => {
    expect(() => configFromObject({ ...base, coalescing: section })).toThrow(reason)
  })
})

describe('configFromObject', () => {
  it('validates a config built in code, with key paths', () => {
    expect(() => configFromObject({ listeners: [], upstream: { host: 'h', port: 1 } })).toThrow(/listeners: at least one listener is required/)
    expect(configFromObject({ listeners: [{ name: 'l', protocol: 'mqtt', port: 0 }], upstream: { host: 'h', port: 1 } }).listeners[0]!.port).toBe(0)
  })
})
