/**
 * The fuzz upstream's grammar is only worth what it catches: valid packets of every type and
 * version pass it, and each rule it claims refuses the packet that breaks it.
 */
import { generate, type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { ClientStream, FrameSplitter } from './grammar.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

function stream(version: 3 | 4 | 5): ClientStream {
  const s = new ClientStream(undefined, 10)
  const connect = generate({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clientId: 'g', clean: true, keepalive: 10 } as Packet, { protocolVersion: version })
  expect(s.check(connect)).toBeNull()
  return s
}

const valid: Array<[string, Packet]> = [
  ['publish qos 0', { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }],
  ['publish qos 2', { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 2, messageId: 3, retain: true, dup: true }],
  ['subscribe', { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+/c', qos: 1 }, { topic: '#', qos: 2 }] }],
  ['unsubscribe', { cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a/#'] }],
  ['puback', { cmd: 'puback', messageId: 4 }],
  ['pubrel', { cmd: 'pubrel', messageId: 4 }],
  ['pingreq', { cmd: 'pingreq' }],
  ['disconnect', { cmd: 'disconnect' }],
] as Array<[string, Packet]>

describe('fuzz grammar (client → server)', () => {
  for (const version of [3, 4, 5] as const) {
    for (const [name, packet] of valid) {
      it(`accepts a valid ${name} (level ${version})`, () => {
        expect(stream(version).check(generate(packet, { protocolVersion: version }))).toBeNull()
      })
    }
  }

  it('accepts 5.0 properties where they belong, and follows topic aliases', () => {
    const s = stream(5)
    expect(s.check(generate({ cmd: 'publish', topic: 't/1', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 2, userProperties: { a: 'b' }, contentType: 'c' } }, { protocolVersion: 5 }))).toBeNull()
    expect(s.check(generate({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 2 } }, { protocolVersion: 5 }))).toBeNull()
    expect(s.check(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0, nl: false, rap: false, rh: 0 }], properties: { subscriptionIdentifier: 9 } }, { protocolVersion: 5 }))).toBeNull()
  })

  const t = (s: string): string => Buffer.from(s).toString('hex')
  /** A frame from its first byte and body (hex); the remaining length is computed (< 128 here). */
  const frame = (first: number, body: string): string => Buffer.concat([Buffer.from([first, body.length / 2]), hex(body)]).toString('hex')
  const faults: Array<[string, 3 | 4 | 5, string, RegExp]> = [
    ['a second CONNECT', 4, '101000044d5154540402000a0004636c6964', /second CONNECT/],
    ['reserved flags on SUBSCRIBE', 4, frame(0x80, '0001' + '0001' + t('a') + '00'), /reserved flags/],
    ['PUBLISH QoS 3', 4, frame(0x36, '0001' + t('a') + '0001' + '78'), /QoS 3/],
    ['packet id 0', 4, frame(0x32, '0001' + t('a') + '0000'), /packet id 0/],
    ['a wildcard topic', 4, frame(0x30, '0003' + t('a/+')), /wildcard/],
    ['invalid UTF-8', 4, frame(0x30, '0002c328'), /UTF-8/],
    ['U+0000', 4, frame(0x30, '0002' + '6100' + '78'), /U\+0000/],
    ['# not last', 4, frame(0x82, '0001' + '0005' + t('a/#/b') + '00'), /misplaced/],
    ['subscription QoS 3', 4, frame(0x82, '0001' + '0001' + t('a') + '03'), /QoS 3/],
    ['remaining length mismatch', 4, '40030001', /remaining length/],
    ['a server-only packet type', 4, '20020000', /never comes from a client/],
    ['AUTH before 5.0', 4, 'f000', /AUTH before 5.0/],
    ['No Local on a shared subscription', 5, frame(0x82, '0001' + '00' + '000a' + t('$share/g/a') + '04'), /no local/],
    ['a property not allowed in SUBSCRIBE', 5, frame(0x82, '0001' + '03230001' + '0001' + t('a') + '00'), /not allowed/],
    ['a property block that is too short for its property', 5, frame(0x82, '0001' + '010b05' + '0003' + t('m/a') + '00'), /too short/],
    ['a repeated property', 5, 'e00c000a11000000011100000002', /twice/],
    ['an alias never bound', 5, frame(0x30, '0000' + '03230007'), /never bound/],
    ['an alias above the maximum', 5, frame(0x30, '0001' + t('t') + '03230063'), /above the maximum/],
  ]
  for (const [name, version, bytes, why] of faults) {
    it(`refuses ${name}`, () => {
      expect(stream(version).check(hex(bytes))).toMatch(why)
    })
  }

  it('refuses a first packet that is not CONNECT and a CONNECT with a bad will', () => {
    expect(new ClientStream().check(hex('c000'))).toMatch(/not CONNECT/)
    // Will QoS 3 (flags 0x1e: will, QoS 3, clean).
    expect(new ClientStream().check(hex('100f00044d515454041e000a0001630000'))).toMatch(/QoS 3|short/)
  })

  it('splits frames across any chunking', () => {
    const bytes = Buffer.concat([hex('c000'), generate({ cmd: 'publish', topic: 'a', payload: Buffer.alloc(200), qos: 0, retain: false, dup: false }), hex('c000')])
    for (const size of [1, 2, 3, 7, 500]) {
      const splitter = new FrameSplitter()
      const out: Array<Buffer | 'error'> = []
      for (let i = 0; i < bytes.length; i += size) out.push(...splitter.push(bytes.subarray(i, i + size)))
      expect(out.map((f) => (f === 'error' ? 'error' : f.length))).toEqual([2, 206, 2])
    }
  })
})
