import { describe, expect, it } from 'vitest'
import { configFromObject } from '../../../src/config/load.js'
import { parseByteRate } from '../../../src/config/units.js'
import { ConfigError } from '../../../src/errors.js'

const base = { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1883 } }
const load = (limits: Record<string, unknown>) => configFromObject({ ...base, limits }, 'moat.yaml').limits

function problems(limits: Record<string, unknown>): string[] {
  try {
    load(limits)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
  throw new Error('loaded, but should not')
}

describe('limits config', () => {
  it('compiles every key into bytes, milliseconds and rates', () => {
    const limits = load({
      maxPacketSize: '2MiB',
      maxPayload: '16KiB',
      payload: [{ topic: 'camera/#', max: '1MiB' }],
      messageRate: '100/s',
      byteRate: '64KiB/s',
      packetRate: '200/s',
      burst: '1s',
      onExcess: 'drop',
      perUsername: { messageRate: '1000/m', onExcess: 'disconnect' },
      topics: [{ topic: 'alerts/#', rate: '1/s', onExcess: 'drop' }, { topic: 'logs/+', rate: '10/s' }],
      connections: { rate: '500/s', perAddressRate: '20/s', perAddress: 50, perUsername: 5, total: 10000, trackedAddresses: 50000 },
      maxSubscriptions: 100,
      maxInflight: 20,
      maxKeepalive: '5m',
      overload: { eventLoopLag: '200ms', memory: '1GiB', sampleInterval: '1s' },
    })
    expect(limits).toMatchObject({
      maxPacketSize: 2 * 1024 * 1024,
      maxPayload: 16 * 1024,
      payload: [{ topic: 'camera/#', max: 1024 * 1024 }],
      messageRate: { count: 100, perMs: 1000 },
      byteRate: { count: 65_536, perMs: 1000 },
      packetRate: { count: 200, perMs: 1000 },
      burstMs: 1000,
      onExcess: 'drop',
      perUsername: { messageRate: { count: 1000, perMs: 60_000 }, byteRate: null, packetRate: null, burstMs: 100, onExcess: 'disconnect', trackedUsers: 10_000 },
      topics: [
        { topic: 'alerts/#', rate: { count: 1, perMs: 1000 }, burstMs: 1000, onExcess: 'drop' },
        { topic: 'logs/+', rate: { count: 10, perMs: 1000 }, burstMs: 1000, onExcess: 'drop' },
      ],
      connections: { rate: { count: 500, perMs: 1000 }, perAddressRate: { count: 20, perMs: 1000 }, perAddress: 50, perUsername: 5, total: 10000, trackedAddresses: 50000 },
      maxSubscriptions: 100,
      maxInflight: 20,
      maxKeepalive: 300,
      overload: { eventLoopLagMs: 200, memory: 1024 ** 3, sampleMs: 1000 },
    })
  })

  it('names the key and the reason of each bad value', () => {
    expect(problems({
      messageRate: 'fast',
      byteRate: '64KiB',
      onExcess: 'ignore',
      topics: [{ topic: 'a/#/b', rate: '1/s' }],
      maxInflight: 70_000,
      maxKeepalive: '0',
      connections: { perAddress: 0, unknown: 1 },
    }).sort()).toEqual([
      'limits.messageRate: expected a rate like 100/s (per s, m or h), got "fast"',
      'limits.byteRate: expected a byte rate like 64KiB/s (per s, m or h), got "64KiB"',
      'limits.onExcess: expected throttle, drop or disconnect',
      'limits.topics.0.topic: is not a valid topic filter (# only last, + and # fill whole levels)',
      'limits.connections.perAddress: must be at least 1',
      "limits.connections.unknown: unknown key 'unknown'",
      'limits.maxInflight: at most 65535 (the MQTT Receive Maximum)',
      'limits.maxKeepalive: must be between 1s and 65535s',
    ].sort())
  })

  it('refuses a payload cap above maxPacketSize (it could never be reached)', () => {
    expect(problems({ maxPacketSize: '256KiB', maxPayload: '1MiB', payload: [{ topic: 'camera/#', max: '1MiB' }] })).toEqual([
      'limits.maxPayload: 1048576 bytes is above maxPacketSize (262144): raise maxPacketSize too',
      'limits.payload.0.max: 1048576 bytes is above maxPacketSize (262144): raise maxPacketSize too',
    ])
  })

  it('refuses a rate a token bucket cannot count exactly', () => {
    expect(problems({ byteRate: '1TiB/h', burst: '1h' })).toEqual([
      expect.stringMatching(/^limits\.byteRate: rate .* outside what a token bucket can count exactly$/),
    ])
  })

  it('parses byte rates', () => {
    expect(parseByteRate('1.5KiB/s')).toEqual({ count: 1536, perMs: 1000 })
    expect(parseByteRate('1000/m')).toEqual({ count: 1000, perMs: 60_000 })
    expect(() => parseByteRate('0/s')).toThrow('above zero')
  })
})
