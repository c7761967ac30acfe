import { generate, type IConnectPacket, type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { ConnectProtocol, connectDecoder, DecodeFault, PacketDecoder, readConnectLevel } from '../../../src/protocol/decode.js'
import { MAX_USER_PROPERTIES, TOO_MANY_USER_PROPERTIES } from '../../../src/protocol/properties.js'
import { varint } from '../../helpers/bytes.js'
import { mosquittoConnack, mosquittoPub, mqttjs, paho } from './fixtures/client-bytes.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/** A frame of type/flags `first` around `body` (the Remaining Length is computed). */
function frame(first: number, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? hex(body) : body
  return Buffer.concat([Buffer.from([first, ...varint(b.length)]), b])
}

/** A two-byte-length-prefixed field. */
function field(bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

/** A property block: the properties with their Property Length in front. */
function block(...parts: Array<Buffer | string>): Buffer {
  const b = Buffer.concat(parts.map((p) => typeof p === 'string' ? hex(p) : p))
  return Buffer.concat([Buffer.from(varint(b.length)), b])
}

/** A 3.1.1 SUBSCRIBE with one filter given as raw bytes. */
function subscribeWithFilter(filter: Buffer): Buffer {
  return frame(0x82, Buffer.concat([Buffer.from([0, 1]), field(filter), Buffer.from([0])]))
}

/** A CONNECT of `level` with the given connect flags and fields, each a raw byte string. */
function connect(level: 3 | 4 | 5, flags: number, fields: Buffer[], properties: Buffer = hex('00')): Buffer {
  const head = Buffer.concat([field(level === 3 ? 'MQIsdp' : 'MQTT'), Buffer.from([level, flags, 0, 60])])
  return frame(0x10, Buffer.concat([head, level === 5 ? properties : Buffer.alloc(0), ...fields]))
}

function decodeOk(decoder: PacketDecoder, bytes: Buffer): Packet {
  const packet = decoder.decode(bytes)
  if (packet === null) expect.fail(`${bytes.toString('hex')}: ${decoder.lastError}`)
  expect(decoder.lastError).toBe('')
  expect(decoder.lastFault).toBeNull()
  return packet
}

function refused(decoder: PacketDecoder, bytes: Buffer, fault: DecodeFault, fieldName?: string): string {
  expect(decoder.decode(bytes), bytes.toString('hex')).toBeNull()
  expect(decoder.lastFault).toBe(fault)
  if (fieldName !== undefined) expect(decoder.lastField).toBe(fieldName)
  return decoder.lastError
}

describe('PacketDecoder: what real clients send', () => {
  const stacks = { mosquittoPub, paho, mqttjs }
  for (const [stack, streams] of Object.entries(stacks)) {
    for (const level of [3, 4, 5] as const) {
      it(`${stack}, protocol level ${level}: every packet Moat decodes`, () => {
        const frames = streams[level].map((h) => hex(h))
        const connectPacket = decodeOk(connectDecoder, frames[0]!) as IConnectPacket
        expect(connectPacket).toMatchObject({ cmd: 'connect', protocolVersion: level, protocolId: level === 3 ? 'MQIsdp' : 'MQTT', clean: true })
        const decoder = new PacketDecoder(level)
        for (const bytes of frames.slice(1)) {
          if (bytes[0]! >> 4 === 3) continue // PUBLISH: the fast path's (publish.ts)
          decodeOk(decoder, bytes)
        }
        // What the stream decodes to survives a round trip through mqtt-packet's generate (Moat's rewrites).
        expect(decodeOk(new PacketDecoder(), generate(connectPacket, { protocolVersion: level }))).toEqual(connectPacket)
      })
    }
  }

  it('mosquitto_pub 5.0: CONNECT with properties, will properties, user name and password; the short DISCONNECT', () => {
    expect(decodeOk(connectDecoder, hex(mosquittoPub[5][0]))).toEqual({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'moat-fixture',
      properties: { sessionExpiryInterval: 30, receiveMaximum: 20, userProperties: { k: 'v' } },
      will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: false, properties: { willDelayInterval: 5 } },
      username: 'alice', password: Buffer.from('secret'),
    })
    expect(decodeOk(new PacketDecoder(5), hex(mosquittoPub[5][2]))).toEqual({ cmd: 'disconnect', reasonCode: 0 })
  })

  it('paho 5.0: will Content Type, SUBSCRIBE options and UNSUBSCRIBE', () => {
    expect(decodeOk(connectDecoder, hex(paho[5][0]))).toMatchObject({
      clientId: 'paho-fixture', keepalive: 30, username: 'bob', password: Buffer.from('pw'),
      properties: { sessionExpiryInterval: 60, receiveMaximum: 10 },
      will: { topic: 'dev/status', payload: Buffer.from('offline'), qos: 1, retain: true, properties: { contentType: 'text/plain', willDelayInterval: 10 } },
    })
    const decoder = new PacketDecoder(5)
    expect(decodeOk(decoder, hex(paho[5][1]))).toEqual({
      cmd: 'subscribe', messageId: 1,
      subscriptions: [{ topic: 's/+/t', qos: 1, nl: false, rap: false, rh: 0 }, { topic: 's/#', qos: 2, nl: false, rap: false, rh: 0 }],
    })
    expect(decodeOk(decoder, hex(paho[5][2]))).toEqual({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['s/#'] })
  })

  it('MQTT.js 5.0: Payload Format Indicator in the will, No Local and Retain Handling in SUBSCRIBE', () => {
    expect(decodeOk(connectDecoder, hex(mqttjs[5][0]))).toMatchObject({
      properties: { sessionExpiryInterval: 120, topicAliasMaximum: 8, requestProblemInformation: true },
      will: { topic: 'lwt/x', qos: 0, retain: false, properties: { willDelayInterval: 2, payloadFormatIndicator: true } },
    })
    expect(decodeOk(new PacketDecoder(5), hex(mqttjs[5][1]))).toMatchObject({ subscriptions: [{ topic: 'x/+', qos: 1, nl: true, rap: false, rh: 1 }] })
  })

  it('3.1 and 3.1.1 SUBSCRIBE: topic and QoS only', () => {
    expect(decodeOk(new PacketDecoder(3), hex(paho[3][1]))).toEqual({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's/+/t', qos: 1 }, { topic: 's/#', qos: 2 }] })
    expect(decodeOk(new PacketDecoder(4), hex(mqttjs[4][1]))).toEqual({ cmd: 'subscribe', messageId: 0x0e31, subscriptions: [{ topic: 'x/+', qos: 1 }] })
  })

  it('Mosquitto 2.0.11 CONNACKs (5.0), as the session reads them', () => {
    const decoder = new PacketDecoder(5)
    expect(decodeOk(decoder, hex(mosquittoConnack.plain))).toEqual({ cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: { topicAliasMaximum: 10, receiveMaximum: 20 } })
    expect(decodeOk(decoder, hex(mosquittoConnack.assignedId))).toMatchObject({ properties: { assignedClientIdentifier: 'auto-E0F8290A-6D29-EB29-20CD-AC45E3ECB58A', topicAliasMaximum: 10, receiveMaximum: 20 } })
    expect(decodeOk(new PacketDecoder(4), hex('20020100'))).toEqual({ cmd: 'connack', sessionPresent: true, returnCode: 0 })
    expect(decodeOk(new PacketDecoder(4), hex('20020005'))).toMatchObject({ returnCode: 5 })
  })
})

describe('PacketDecoder: the short forms of 5.0', () => {
  const v5 = new PacketDecoder(5)
  const v4 = new PacketDecoder(4)

  it('DISCONNECT with Remaining Length 0 (Normal disconnection) and 1 (a reason code alone)', () => {
    expect(decodeOk(v5, hex('e000'))).toEqual({ cmd: 'disconnect', reasonCode: 0 })
    expect(decodeOk(v5, hex('e00100'))).toEqual({ cmd: 'disconnect', reasonCode: 0 })
    expect(decodeOk(v5, hex('e00104'))).toEqual({ cmd: 'disconnect', reasonCode: 4 }) // with Will Message
    expect(decodeOk(v5, hex('e0028100'))).toEqual({ cmd: 'disconnect', reasonCode: 0x81 })
    expect(decodeOk(v5, hex('e0070005 1100000000'))).toEqual({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
  })

  it('AUTH with Remaining Length 0 (Success) and 1 (a reason code alone)', () => {
    expect(decodeOk(v5, hex('f000'))).toEqual({ cmd: 'auth', reasonCode: 0 })
    expect(decodeOk(v5, hex('f00118'))).toEqual({ cmd: 'auth', reasonCode: 0x18 })
    expect(decodeOk(v5, hex('f00119'))).toEqual({ cmd: 'auth', reasonCode: 0x19 })
    expect(decodeOk(v5, hex('f0021800'))).toEqual({ cmd: 'auth', reasonCode: 0x18 })
    expect(decodeOk(v5, hex('f00a18 08 1500 0573 6372 616d'))).toEqual({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'scram' } })
  })

  it('acks with Remaining Length 2 (Success), 3 (a reason code alone) and 4 (an empty property block)', () => {
    expect(decodeOk(v5, hex('40020007'))).toEqual({ cmd: 'puback', messageId: 7, reasonCode: 0 })
    expect(decodeOk(v5, hex('5003000710'))).toEqual({ cmd: 'pubrec', messageId: 7, reasonCode: 0x10 })
    expect(decodeOk(v5, hex('62020007'))).toEqual({ cmd: 'pubrel', messageId: 7, reasonCode: 0 })
    expect(decodeOk(v5, hex('7003000792'))).toEqual({ cmd: 'pubcomp', messageId: 7, reasonCode: 0x92 })
    expect(decodeOk(v5, hex('400400078700'))).toEqual({ cmd: 'puback', messageId: 7, reasonCode: 0x87 })
    expect(decodeOk(v5, hex('4008000787 04 1f0001 78'))).toEqual({ cmd: 'puback', messageId: 7, reasonCode: 0x87, properties: { reasonString: 'x' } })
  })

  it('3.1.1 has no such forms: acks are 2 bytes, DISCONNECT is empty, AUTH does not exist', () => {
    expect(decodeOk(v4, hex('40020007'))).toEqual({ cmd: 'puback', messageId: 7 })
    refused(v4, hex('4003000700'), DecodeFault.Malformed, 'trailing')
    expect(decodeOk(v4, hex('e000'))).toEqual({ cmd: 'disconnect' })
    refused(v4, hex('e00100'), DecodeFault.Malformed, 'trailing')
    refused(v4, hex('f000'), DecodeFault.ProtocolError, 'header')
  })

  it('refuses reason codes a packet may not carry, and packet identifier 0', () => {
    refused(v5, hex('4003000701'), DecodeFault.ProtocolError, 'reason_code')
    refused(v5, hex('6203000710'), DecodeFault.ProtocolError, 'reason_code') // PUBREL: only 0x00 and 0x92
    refused(v5, hex('e00105'), DecodeFault.ProtocolError, 'reason_code')
    refused(v5, hex('f00104'), DecodeFault.ProtocolError, 'reason_code')
    refused(v5, hex('40020000'), DecodeFault.Malformed, 'packet_id')
    refused(v5, hex('82050000000161'), DecodeFault.Malformed, 'packet_id')
  })

  it('refuses a property block cut short or followed by bytes, in every form', () => {
    refused(v5, hex('e0020001'), DecodeFault.Malformed, 'properties') // declares 1 byte, has none
    refused(v5, hex('e003000000'), DecodeFault.Malformed, 'trailing')
    refused(v5, hex('f003180000'), DecodeFault.Malformed, 'trailing')
    refused(v5, hex('40050007000000'), DecodeFault.Malformed, 'trailing')
    refused(v5, hex('400500070001 1f'), DecodeFault.Malformed, 'properties')
  })
})

describe('PacketDecoder: CONNECT rules', () => {
  const will = [field('id'), field('w/t'), field('bye')]

  it('refuses the reserved flag, Will QoS 3, and will QoS or retain without a will [MQTT-3.1.2-3] [MQTT-3.1.2-11..13]', () => {
    for (const level of [3, 4, 5] as const) {
      refused(connectDecoder, connect(level, 0x03, [field('id')]), DecodeFault.Malformed, 'connect_flags')
      refused(connectDecoder, connect(level, 0x1e, will), DecodeFault.Malformed, 'connect_flags')
      refused(connectDecoder, connect(level, 0x0a, [field('id')]), DecodeFault.Malformed, 'connect_flags')
      refused(connectDecoder, connect(level, 0x22, [field('id')]), DecodeFault.Malformed, 'connect_flags')
      expect(decodeOk(connectDecoder, connect(level, 0x36, level === 5 ? [field('id'), hex('00'), ...will.slice(1)] : will))).toMatchObject({ will: { qos: 2, retain: true } })
    }
  })

  it('refuses a password without a user name before 5.0 [MQTT-3.1.2-22]; 5.0 allows it', () => {
    refused(connectDecoder, connect(3, 0x42, [field('id'), field('pw')]), DecodeFault.ProtocolError, 'connect_flags')
    refused(connectDecoder, connect(4, 0x42, [field('id'), field('pw')]), DecodeFault.ProtocolError, 'connect_flags')
    expect(decodeOk(connectDecoder, connect(5, 0x42, [field('id'), field('pw')]))).toMatchObject({ password: Buffer.from('pw') })
  })

  it('reads the bridge bit of the protocol level', () => {
    const bytes = connect(4, 0x02, [field('id')])
    bytes[8] = 0x84
    expect(decodeOk(connectDecoder, bytes)).toMatchObject({ protocolVersion: 4, bridgeMode: true })
  })

  it('refuses a CONNECT cut short in any field, or with bytes after its last', () => {
    const good = hex(mosquittoPub[5][0])
    for (let cut = 1; cut < good.length - 2; cut++) {
      const truncated = frame(0x10, good.subarray(2, good.length - cut))
      expect(connectDecoder.decode(truncated), `cut ${cut}`).toBeNull()
      expect(connectDecoder.lastFault).not.toBeNull()
    }
    const padded = frame(0x10, Buffer.concat([good.subarray(2), hex('0102')]))
    expect(refused(connectDecoder, padded, DecodeFault.Malformed, 'trailing')).toMatch(/after the last field/)
  })

  it('refuses a protocol name or level it does not know (the session answers these first: readConnectLevel)', () => {
    refused(connectDecoder, frame(0x10, Buffer.concat([field('MQTX'), hex('04 02 003c'), field('id')])), DecodeFault.ProtocolError, 'protocol')
    refused(connectDecoder, frame(0x10, Buffer.concat([field('MQTT'), hex('03 02 003c'), field('id')])), DecodeFault.ProtocolError, 'protocol')
    refused(connectDecoder, frame(0x10, Buffer.concat([field('MQIsdp'), hex('04 02 003c'), field('id')])), DecodeFault.ProtocolError, 'protocol')
  })

  it('the CONNECT decoder refuses anything but a CONNECT', () => {
    refused(connectDecoder, hex('c000'), DecodeFault.ProtocolError, 'header')
    refused(connectDecoder, hex('e000'), DecodeFault.ProtocolError, 'header')
  })
})

describe('PacketDecoder: strings the broker refuses', () => {
  const bad = Buffer.from('a\u0001b')

  it('in every string field of a CONNECT, reported with the field', () => {
    for (const level of [3, 4, 5] as const) {
      const props = level === 5 ? [hex('00')] : []
      refused(connectDecoder, connect(level, 0x02, [field(bad)]), DecodeFault.BadString, 'client_id')
      refused(connectDecoder, connect(level, 0x06, [field('id'), ...props, field(bad), field('x')]), DecodeFault.BadString, 'will_topic')
      refused(connectDecoder, connect(level, 0x82, [field('id'), field(bad)]), DecodeFault.BadString, 'username')
      // The password and the will payload are binary: anything goes.
      expect(decodeOk(connectDecoder, connect(level, 0xc6, [field('id'), ...props, field('w'), field(bad), field('u'), field(bad)]))).toMatchObject({ password: bad, will: { payload: bad } })
    }
    refused(connectDecoder, connect(5, 0x02, [field('id')], block('26', field('k'), field(bad))), DecodeFault.BadString, 'properties')
    refused(connectDecoder, connect(5, 0x02, [field('id')], block('26', field(bad), field('v'))), DecodeFault.BadString, 'properties')
    refused(connectDecoder, connect(5, 0x06, [field('id'), block('03', field(bad)), field('w'), field('x')]), DecodeFault.BadString, 'will_properties')
  })

  it('in topic filters and string properties of the other packets', () => {
    const v5 = new PacketDecoder(5)
    refused(new PacketDecoder(4), subscribeWithFilter(bad), DecodeFault.BadString, 'topic_filter')
    refused(v5, frame(0xa2, Buffer.concat([hex('0001 00'), field(bad)])), DecodeFault.BadString, 'topic_filter')
    refused(v5, frame(0x82, Buffer.concat([hex('0001'), block('26', field('k'), field(Buffer.from([0xc2, 0x85]))), field('f'), hex('00')])), DecodeFault.BadString, 'properties')
    refused(v5, frame(0xe0, Buffer.concat([hex('00'), block('1f', field(Buffer.from('\uFFFF')))])), DecodeFault.BadString, 'properties')
    refused(v5, frame(0x40, Buffer.concat([hex('0001 00'), block('1f', field(Buffer.from('\uFDD0')))])), DecodeFault.BadString, 'properties')
    refused(v5, frame(0xf0, Buffer.concat([hex('18'), block('15', field(Buffer.from('m\u0085')))])), DecodeFault.BadString, 'properties')
  })

  it('ill-formed UTF-8 and U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]; a real U+FFFD is fine', () => {
    const decoder = new PacketDecoder(4)
    expect(refused(decoder, subscribeWithFilter(Buffer.from([0x61, 0xff])), DecodeFault.BadString)).toMatch(/UTF-8/)
    refused(decoder, subscribeWithFilter(Buffer.from('a\u0000')), DecodeFault.BadString)
    expect(decodeOk(decoder, subscribeWithFilter(Buffer.from('a/\uFFFD')))).toMatchObject({ subscriptions: [{ topic: 'a/\uFFFD' }] })
  })
})

describe('PacketDecoder: SUBSCRIBE and UNSUBSCRIBE rules', () => {
  it('refuses them without a topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]', () => {
    const decoder = new PacketDecoder(4)
    expect(refused(decoder, hex('82020001'), DecodeFault.Malformed)).toMatch(/without a topic filter/)
    refused(decoder, hex('a2020001'), DecodeFault.Malformed)
    refused(new PacketDecoder(5), hex('8203000100'), DecodeFault.Malformed)
  })

  it('refuses reserved option bits, QoS 3 and Retain Handling 3', () => {
    const sub = (level: number, options: number): Buffer => frame(0x82, Buffer.concat([hex('0001'), level === 5 ? hex('00') : Buffer.alloc(0), field('a'), Buffer.from([options])]))
    refused(new PacketDecoder(4), sub(4, 0x04), DecodeFault.Malformed, 'subscription_options')
    refused(new PacketDecoder(4), sub(4, 0x03), DecodeFault.Malformed, 'subscription_options')
    refused(new PacketDecoder(5), sub(5, 0x40), DecodeFault.Malformed, 'subscription_options')
    refused(new PacketDecoder(5), sub(5, 0x30), DecodeFault.ProtocolError, 'subscription_options')
    expect(decodeOk(new PacketDecoder(5), sub(5, 0x2e))).toMatchObject({ subscriptions: [{ qos: 2, nl: true, rap: true, rh: 2 }] })
  })

  it('refuses a filter that runs past the packet, as a value and never by throwing', () => {
    refused(new PacketDecoder(4), hex('820400010005'), DecodeFault.Malformed, 'topic_filter')
  })

  it('refuses wrong fixed-header flags and a frame longer or shorter than its Remaining Length', () => {
    const decoder = new PacketDecoder(4)
    refused(decoder, hex('8008 0001 0003 612f62 00'), DecodeFault.Malformed, 'header')
    refused(decoder, hex('8209 0001 0003 612f62 00'), DecodeFault.Malformed, 'header')
    refused(decoder, hex('8207 0001 0003 612f62 00 00'), DecodeFault.Malformed, 'header')
    refused(decoder, hex('828700 0001 0003 612f62 00'), DecodeFault.Malformed, 'header') // non-minimal length
  })

  it('MQTT 3.1 had no reserved-flag rule: its SUBSCRIBE, UNSUBSCRIBE and PUBREL may carry DUP', () => {
    const decoder = new PacketDecoder(3)
    expect(decodeOk(decoder, hex('8a08 0001 0003 612f62 00'))).toMatchObject({ cmd: 'subscribe', subscriptions: [{ topic: 'a/b' }] })
    expect(decodeOk(decoder, hex('aa07 0001 0003 612f62'))).toMatchObject({ cmd: 'unsubscribe' })
    expect(decodeOk(decoder, hex('6a020001'))).toMatchObject({ cmd: 'pubrel', messageId: 1 })
    refused(new PacketDecoder(4), hex('8a08 0001 0003 612f62 00'), DecodeFault.Malformed, 'header')
  })
})

describe('PacketDecoder: properties', () => {
  it('reports too many user properties as such (the session answers Quota Exceeded)', () => {
    const userProperties = Object.fromEntries(Array.from({ length: MAX_USER_PROPERTIES + 1 }, (_, i) => [`k${i}`, 'v']))
    const decoder = new PacketDecoder(5)
    expect(refused(decoder, generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }], properties: { userProperties } }, { protocolVersion: 5 }), DecodeFault.TooManyUserProperties)).toBe(TOO_MANY_USER_PROPERTIES)
  })

  it('keeps repeated user property names, as mqtt-packet does', () => {
    const props = `${['26', field('k').toString('hex'), field('1').toString('hex'), '26', field('k').toString('hex'), field('2').toString('hex'), '26', field('j').toString('hex'), field('3').toString('hex')].join('')}`
    const body = Buffer.concat([hex('0001'), Buffer.from(varint(props.length / 2)), hex(props), field('a'), hex('00')])
    expect(decodeOk(new PacketDecoder(5), frame(0x82, body))).toMatchObject({ properties: { userProperties: { k: ['1', '2'], j: '3' } } })
  })

  it('relays a Payload Format Indicator other than 0 or 1 (the spec names no fault; the broker relays it)', () => {
    expect(decodeOk(connectDecoder, connect(5, 0x06, [field('id'), hex('02 01 ed'), field('w'), field('x')]))).toMatchObject({ will: { properties: { payloadFormatIndicator: true } } })
  })

  it('classifies a repeated property and an out-of-range value as protocol errors, an unknown one as malformed', () => {
    const decoder = new PacketDecoder(5)
    refused(decoder, hex('e00c 00 0a 1100000001 1100000002'), DecodeFault.ProtocolError, 'properties')
    refused(decoder, frame(0x82, '0001 02 0b00 0001 61 00'), DecodeFault.ProtocolError, 'properties')
    refused(decoder, frame(0x82, '0001 03 2300 01 0001 61 00'), DecodeFault.Malformed, 'properties')
    refused(connectDecoder, connect(5, 0x02, [field('id')], hex('02 17 02')), DecodeFault.ProtocolError, 'properties')
    refused(connectDecoder, connect(5, 0x02, [field('id')], hex('03 21 0000')), DecodeFault.ProtocolError, 'properties')
    refused(connectDecoder, connect(5, 0x06, [field('id'), hex('03 23 0001'), field('w'), field('x')]), DecodeFault.Malformed, 'will_properties')
  })
})

describe('PacketDecoder: state and robustness', () => {
  it('the shared CONNECT decoder: any version in turn, good after bad, and nothing kept past the call', () => {
    const make = (protocolVersion: 3 | 4 | 5, clientId: string, password: string): Buffer => generate({ cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId, clean: true, keepalive: 10, username: 'u', password: Buffer.from(password), ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 5 } } : {}) })
    const good = make(5, 'a', 'pw-a')
    const truncated = frame(0x10, good.subarray(2, good.length - 3))
    const padded = frame(0x10, Buffer.concat([good.subarray(2), hex('0102')]))
    const bad = [truncated, padded, hex('10020004')]
    for (let round = 0; round < 3; round++) {
      for (const protocolVersion of [3, 4, 5] as const) {
        const id = `dev-${round}-${protocolVersion}`
        expect(connectDecoder.decode(make(protocolVersion, id, `pw-${id}`))).toMatchObject({ cmd: 'connect', clientId: id, protocolVersion, password: Buffer.from(`pw-${id}`) })
        expect(connectDecoder.decode(bad[(round + protocolVersion) % bad.length]!)).toBeNull()
        expect(connectDecoder.lastError).not.toBe('')
      }
    }
    expect(connectDecoder.decode(good)).toMatchObject({ clientId: 'a', properties: { sessionExpiryInterval: 5 } })
    // The decoder holds no packet or buffer (the last CONNECT's password) once decode returns.
    for (const value of Object.values(connectDecoder)) expect(typeof value === 'object' && value !== null).toBe(false)
  })

  it('never throws: random bytes and every single-byte mutation of real packets', () => {
    const decoders = [connectDecoder, new PacketDecoder(3), new PacketDecoder(4), new PacketDecoder(5)]
    let seed = 11
    const random = (n: number): number => Math.floor(((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000) * n)
    const inputs: Buffer[] = []
    for (let i = 0; i < 5000; i++) {
      const body = Buffer.from(Array.from({ length: random(40) }, () => random(256)))
      inputs.push(frame(random(256), body))
    }
    const seeds = [...Object.values(paho), ...Object.values(mqttjs), ...Object.values(mosquittoPub)].flat().map((h) => hex(h))
    seeds.push(hex(mosquittoConnack.assignedId), hex('4008000787041f000178'), hex('f00a1808150005736372616d'))
    for (const packet of seeds) {
      for (let at = 0; at < packet.length; at++) {
        for (const value of [0x00, 0x01, 0x7f, 0x80, 0xff, packet[at]! ^ 0x01]) {
          const mutated = Buffer.from(packet)
          mutated[at] = value
          inputs.push(mutated)
        }
      }
    }
    for (const input of inputs) {
      for (const decoder of decoders) {
        const packet = decoder.decode(input)
        if (packet === null) expect(decoder.lastFault).not.toBeNull()
      }
    }
  })
})

describe('readConnectLevel', () => {
  const body = (name: string, level: number): Buffer => Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name, 'latin1'), Buffer.from([level])])
  it('knows MQIsdp/3, MQTT/4 and MQTT/5', () => {
    expect(readConnectLevel(body('MQIsdp', 3), 0)).toBe(3)
    expect(readConnectLevel(body('MQTT', 4), 0)).toBe(4)
    expect(readConnectLevel(body('MQTT', 5), 0)).toBe(5)
    expect(readConnectLevel(body('MQTT', 0x84), 0)).toBe(4) // bridge flag
  })
  it('tells a bad name [MQTT-3.1.2-1] from an unsupported level [MQTT-3.1.2-2]', () => {
    expect(readConnectLevel(body('MQTX', 4), 0)).toBe(-ConnectProtocol.BadName)
    expect(readConnectLevel(body('MQTT', 6), 0)).toBe(-ConnectProtocol.UnsupportedLevel)
    expect(readConnectLevel(body('MQIsdp', 4), 0)).toBe(-ConnectProtocol.UnsupportedLevel)
    expect(readConnectLevel(Buffer.from([0, 4, 0x4d]), 0)).toBe(-ConnectProtocol.Malformed)
  })
})
