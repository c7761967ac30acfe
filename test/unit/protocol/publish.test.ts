import { generate, type IPublishPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { MAX_USER_PROPERTIES } from '../../../src/protocol/properties.js'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'
import { ReasonCode } from '../../../src/protocol/reason.js'

function publish(fields: Partial<IPublishPacket>, version = 4): Buffer {
  return generate({ cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 0, retain: false, dup: false, ...fields } as IPublishPacket, { protocolVersion: version })
}

function bodyOffset(frame: Buffer): number {
  let i = 1
  while (frame[i]! & 0x80) i++
  return i + 1
}

function read(frame: Buffer, version = 4, fromClient = true): { fault: number; view: PublishView } {
  const view = new PublishView()
  const fault = readPublish(frame, frame[0]! & 0x0f, bodyOffset(frame), version, fromClient, view)
  return { fault, view }
}

/** A hand-made 3.1.1 PUBLISH: header byte, topic bytes, optional packet id, payload. */
function rawPublish(first: number, topic: Buffer, packetId: number | null, payload = Buffer.from('x')): Buffer {
  const body = Buffer.concat([
    Buffer.from([topic.length >> 8, topic.length & 0xff]), topic,
    packetId === null ? Buffer.alloc(0) : Buffer.from([packetId >> 8, packetId & 0xff]), payload,
  ])
  return Buffer.concat([Buffer.from([first, body.length]), body])
}

describe('readPublish: what it extracts', () => {
  it('reads topic, QoS, retain, dup, packet id and payload bounds (3.1.1)', () => {
    const frame = publish({ topic: 'sensors/äö/1', qos: 1, messageId: 513, retain: true, dup: true, payload: Buffer.from('hello') })
    const { fault, view } = read(frame)
    expect(fault).toBe(0)
    expect(view.topic).toBe('sensors/äö/1')
    expect(view.qos).toBe(1)
    expect(view.retain).toBe(true)
    expect(view.dup).toBe(true)
    expect(view.packetId).toBe(513)
    expect(frame.subarray(view.payloadStart).toString()).toBe('hello')
    expect(view.payloadLength).toBe(5)
  })

  it('reads the topic alias and skips the other 5.0 properties', () => {
    const frame = publish({
      topic: 'a/b', qos: 2, messageId: 9, payload: Buffer.from('xyz'),
      properties: {
        payloadFormatIndicator: true, messageExpiryInterval: 60, topicAlias: 3, responseTopic: 'r/1',
        correlationData: Buffer.from([0, 1, 2]), userProperties: { k: 'v', k2: ['a', 'b'] }, contentType: 'text/plain',
      },
    }, 5)
    const { fault, view } = read(frame, 5)
    expect(fault).toBe(0)
    expect(view.topicAlias).toBe(3)
    expect(view.topic).toBe('a/b')
    expect(frame.subarray(view.payloadStart).toString()).toBe('xyz')
  })

  it('accepts an empty topic with a topic alias on 5.0', () => {
    const { fault, view } = read(publish({ topic: '', properties: { topicAlias: 1 } }, 5), 5)
    expect(fault).toBe(0)
    expect(view.topicLength).toBe(0)
    expect(view.topicAlias).toBe(1)
  })

  it('never looks at the payload: a payload of 0x00 and invalid UTF-8 is fine', () => {
    const { fault } = read(publish({ payload: Buffer.from([0, 0xff, 0xfe, 0xc0]) }))
    expect(fault).toBe(0)
  })
})

describe('readPublish: what it refuses', () => {
  it('refuses QoS 3 [MQTT-3.3.1-4]', () => {
    expect(read(rawPublish(0x36, Buffer.from('t'), 1)).fault).toBe(ReasonCode.MalformedPacket)
  })
  it('refuses DUP on QoS 0 [MQTT-3.3.1-2]', () => {
    expect(read(rawPublish(0x38, Buffer.from('t'), null)).fault).toBe(ReasonCode.MalformedPacket)
  })
  it('refuses packet id 0 on QoS 1 [MQTT-2.2.1-3] as a protocol error (the broker\'s own code for it)', () => {
    expect(read(rawPublish(0x32, Buffer.from('t'), 0)).fault).toBe(ReasonCode.ProtocolError)
  })
  it.each(['a/+', 'a/#', '#', '+'])('refuses wildcard %s in a topic name [MQTT-3.3.2-2]', (topic) => {
    expect(read(rawPublish(0x30, Buffer.from(topic), null)).fault).toBe(ReasonCode.TopicNameInvalid)
  })
  it('refuses U+0000 in a topic [MQTT-1.5.4-2]', () => {
    expect(read(rawPublish(0x30, Buffer.from('a\u0000b'), null)).fault).toBe(ReasonCode.MalformedPacket)
  })
  it.each([
    ['a lone continuation byte', [0x61, 0x80]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated sequence', [0x61, 0xe2, 0x82]],
  ])('refuses invalid UTF-8 in a topic: %s [MQTT-1.5.4-1]', (_name, bytes) => {
    expect(read(rawPublish(0x30, Buffer.from(bytes), null)).fault).toBe(ReasonCode.MalformedPacket)
  })
  it('refuses an empty topic on 3.1.1 [MQTT-4.7.3-1]', () => {
    expect(read(rawPublish(0x30, Buffer.alloc(0), null)).fault).toBe(ReasonCode.TopicNameInvalid)
  })
  it('refuses an empty topic without alias on 5.0', () => {
    expect(read(publish({ topic: '' }, 5), 5).fault).toBe(ReasonCode.ProtocolError)
  })
  it('refuses topic alias 0 [MQTT-3.3.2-8]', () => {
    const frame = publish({ topic: 'a', properties: { topicAlias: 7 } }, 5)
    const at = frame.indexOf(0x23, bodyOffset(frame) + 3)
    frame.writeUInt16BE(0, at + 1)
    expect(read(frame, 5).fault).toBe(ReasonCode.TopicAliasInvalid)
  })
  it('refuses a subscription identifier from a client [MQTT-3.3.4-6] but not from the broker', () => {
    const frame = publish({ topic: 'a', properties: { subscriptionIdentifier: 5 } }, 5)
    expect(read(frame, 5, true).fault).toBe(ReasonCode.ProtocolError)
    expect(read(frame, 5, false).fault).toBe(0)
  })
  it(`reads ${MAX_USER_PROPERTIES} user properties and answers Quota Exceeded for one more (CVE-2021-41039)`, () => {
    const props = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']))
    const ok = read(publish({ topic: 'a/b', qos: 1, messageId: 1, properties: { userProperties: props(MAX_USER_PROPERTIES), topicAlias: 2 } }, 5), 5)
    expect(ok.fault).toBe(0)
    expect(ok.view.topicAlias).toBe(2)
    expect(read(publish({ topic: 'a/b', qos: 1, messageId: 1, properties: { userProperties: props(MAX_USER_PROPERTIES + 1) } }, 5), 5).fault).toBe(ReasonCode.QuotaExceeded)
    // The same name repeated counts each time (5.0 allows it).
    const repeated = read(publish({ topic: 'a/b', properties: { userProperties: { k: Array.from({ length: MAX_USER_PROPERTIES + 1 }, () => 'v') } } }, 5), 5)
    expect(repeated.fault).toBe(ReasonCode.QuotaExceeded)
  })

  it('refuses a repeated single-instance property', () => {
    const base = publish({ topic: 'a', properties: { messageExpiryInterval: 1 } }, 5)
    // Append a second Message Expiry Interval and fix the lengths by hand.
    const offset = bodyOffset(base)
    const propsAt = offset + 2 + 1
    const extra = Buffer.from([0x02, 0, 0, 0, 2])
    const body = Buffer.concat([base.subarray(offset, propsAt), Buffer.from([base[propsAt]! + 5]), base.subarray(propsAt + 1, propsAt + 1 + base[propsAt]!), extra, base.subarray(propsAt + 1 + base[propsAt]!)])
    const frame = Buffer.concat([Buffer.from([0x30, body.length]), body])
    expect(read(frame, 5).fault).toBe(ReasonCode.ProtocolError)
  })
  it('refuses an unknown property and a property list that overruns the packet', () => {
    const frame = publish({ topic: 'a', properties: { messageExpiryInterval: 1 } }, 5)
    const propsAt = bodyOffset(frame) + 3
    const unknown = Buffer.from(frame)
    unknown[propsAt + 1] = 0x7e
    expect(read(unknown, 5).fault).toBe(ReasonCode.MalformedPacket)
    const overrun = Buffer.from(frame)
    overrun[propsAt] = 0x70
    expect(read(overrun, 5).fault).toBe(ReasonCode.MalformedPacket)
  })
  it('refuses a response topic with a wildcard [MQTT-3.3.2-14]', () => {
    expect(read(publish({ topic: 'a', properties: { responseTopic: 'r/#' } }, 5), 5).fault).toBe(ReasonCode.TopicNameInvalid)
  })
  it('refuses a topic length that runs past the packet', () => {
    const frame = rawPublish(0x30, Buffer.from('abc'), null, Buffer.alloc(0))
    frame.writeUInt16BE(10, 2)
    expect(read(frame).fault).toBe(ReasonCode.MalformedPacket)
  })
})

describe('readPublish: strings the broker refuses', () => {
  it.each([
    ['U+0001', 'a\u0001b'],
    ['U+001F', 'a\u001f'],
    ['U+007F', 'a\u007f'],
    ['U+0085 (C1)', 'a/\u0085'],
    ['U+FDD0', 'a/\ufdd0'],
    ['U+FFFE', 'a/\ufffe'],
    ['U+10FFFF', 'a/\u{10ffff}'],
  ])('refuses %s in a topic, as a malformed packet with the topic at fault', (_name, topic) => {
    const { fault, view } = read(rawPublish(0x30, Buffer.from(topic), null))
    expect(fault).toBe(ReasonCode.MalformedPacket)
    expect(view.badString).toBe('topic')
  })
  it('accepts the printable range and non-ASCII text, and clears badString on the next packet', () => {
    const view = new PublishView()
    const bad = rawPublish(0x30, Buffer.from('a\u0001'), null)
    expect(readPublish(bad, 0, 2, 4, true, view)).toBe(ReasonCode.MalformedPacket)
    const good = rawPublish(0x30, Buffer.from(' ~/é/世界/🌍/\u00a0'), null)
    expect(readPublish(good, 0, 2, 4, true, view)).toBe(0)
    expect(view.badString).toBeNull()
  })
  it('refuses them in string properties, with the property at fault', () => {
    const cases: Array<IPublishPacket['properties']> = [{ contentType: 'text\u0007' }, { responseTopic: 'r/\u0085' }, { userProperties: { 'k\u0001': 'v' } }, { userProperties: { k: '\ufdef' } }]
    for (const properties of cases) {
      const { fault, view } = read(publish({ topic: 'a', properties }, 5), 5)
      expect(fault, JSON.stringify(properties)).toBe(ReasonCode.MalformedPacket)
      expect(view.badString).toBe('property')
    }
  })
  it('a property cut short is malformed, not a string fault', () => {
    const frame = publish({ topic: 'a', properties: { contentType: 'text' } }, 5)
    const short = Buffer.concat([frame.subarray(0, frame.length - 6)])
    short[1] = short.length - 2
    short[bodyOffset(short) + 3] = short[bodyOffset(short) + 3]! - 6
    const { fault, view } = read(short, 5)
    expect(fault).toBe(ReasonCode.MalformedPacket)
    expect(view.badString).toBeNull()
  })
  it('passes a Payload Format Indicator other than 0 or 1: the spec names no fault for it, and the broker relays it', () => {
    const frame = publish({ topic: 'a', properties: { payloadFormatIndicator: true } }, 5)
    const at = frame.indexOf(0x01, bodyOffset(frame) + 4)
    frame[at + 1] = 0xed
    expect(read(frame, 5).fault).toBe(0)
  })
})
