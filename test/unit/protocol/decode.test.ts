import { generate } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { ConnectProtocol, connectDecoder, PacketDecoder, readConnectLevel } from '../../../src/protocol/decode.js'

/** A 3.1.1 SUBSCRIBE with one filter given as raw bytes. */
function subscribeWithFilter(filter: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([0, 1, filter.length >> 8, filter.length & 0xff]), filter, Buffer.from([0])])
  return Buffer.concat([Buffer.from([0x82, body.length]), body])
}

describe('PacketDecoder', () => {
  it('decodes a CONNECT of any version without being told the version', () => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const frame = generate({ cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId: 'dev-1', clean: true, keepalive: 10, username: 'u', password: Buffer.from('p') })
      const packet = new PacketDecoder().decode(frame)
      expect(packet).toMatchObject({ cmd: 'connect', clientId: 'dev-1', protocolVersion, username: 'u' })
    }
  })

  it('decodes many packets in a row with one decoder', () => {
    const decoder = new PacketDecoder(4)
    for (let i = 1; i < 5; i++) {
      const packet = decoder.decode(generate({ cmd: 'subscribe', messageId: i, subscriptions: [{ topic: `t/${i}`, qos: 1 }] }))
      expect(packet).toMatchObject({ cmd: 'subscribe', messageId: i, subscriptions: [{ topic: `t/${i}`, qos: 1 }] })
    }
  })

  it('refuses ill-formed UTF-8 in a string field, which mqtt-packet alone would let through [MQTT-1.5.4-1]', () => {
    const decoder = new PacketDecoder(4)
    expect(decoder.decode(subscribeWithFilter(Buffer.from([0x61, 0xff])))).toBeNull()
    expect(decoder.lastError).toMatch(/UTF-8/)
    // The decoder recovers for the next packet.
    expect(decoder.decode(subscribeWithFilter(Buffer.from('ok/#')))).toMatchObject({ subscriptions: [{ topic: 'ok/#' }] })
  })

  it('accepts a real U+FFFD in a string field', () => {
    expect(new PacketDecoder(4).decode(subscribeWithFilter(Buffer.from('a/\uFFFD')))).toMatchObject({ subscriptions: [{ topic: 'a/\uFFFD' }] })
  })

  it('refuses U+0000 in a string field [MQTT-1.5.4-2]', () => {
    expect(new PacketDecoder(4).decode(subscribeWithFilter(Buffer.from('a\u0000')))).toBeNull()
  })

  it('refuses bytes after the last field of a CONNECT', () => {
    const frame = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 0 })
    const padded = Buffer.concat([Buffer.from([0x10, frame[1]! + 2]), frame.subarray(2), Buffer.from([1, 2])])
    const decoder = new PacketDecoder()
    expect(decoder.decode(padded)).toBeNull()
    expect(decoder.lastError).toMatch(/after the last field/)
  })

  it('refuses SUBSCRIBE and UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]', () => {
    const decoder = new PacketDecoder(4)
    expect(decoder.decode(Buffer.from([0x82, 0x02, 0x00, 0x01]))).toBeNull()
    expect(decoder.lastError).toMatch(/without a topic filter/)
    expect(decoder.decode(Buffer.from([0xa2, 0x02, 0x00, 0x01]))).toBeNull()
  })

  it('the shared CONNECT decoder: any version in turn, good after bad, and no packet kept past the call', () => {
    const connect = (protocolVersion: 3 | 4 | 5, clientId: string, password: string): Buffer => generate({ cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clientId, clean: true, keepalive: 10, username: 'u', password: Buffer.from(password), ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 5 } } : {}) })
    const good = connect(5, 'a', 'pw-a')
    const truncated = Buffer.concat([Buffer.from([0x10, good[1]! - 3]), good.subarray(2, good.length - 3)])
    const padded = Buffer.concat([Buffer.from([0x10, good[1]! + 2]), good.subarray(2), Buffer.from([1, 2])])
    const bad = [truncated, padded, Buffer.from([0x10, 0x02, 0x00, 0x04])]
    for (let round = 0; round < 3; round++) {
      for (const protocolVersion of [3, 4, 5] as const) {
        const id = `dev-${round}-${protocolVersion}`
        expect(connectDecoder.decode(connect(protocolVersion, id, `pw-${id}`))).toMatchObject({ cmd: 'connect', clientId: id, protocolVersion, password: Buffer.from(`pw-${id}`) })
        expect(connectDecoder.decode(bad[(round + protocolVersion) % bad.length]!)).toBeNull()
        expect(connectDecoder.lastError).not.toBe('')
      }
    }
    expect(connectDecoder.decode(good)).toMatchObject({ clientId: 'a', properties: { sessionExpiryInterval: 5 } })
    // Neither the decoder nor its parser holds the last CONNECT (its password) once decode returns.
    const internals = connectDecoder as unknown as { packet: unknown; parser: { packet: { password?: Buffer } } }
    expect(internals.packet).toBeNull()
    expect(internals.parser.packet.password).toBeUndefined()
  })

  it('reports malformed packets as a value, never by throwing', () => {
    const decoder = new PacketDecoder(4)
    expect(decoder.decode(Buffer.from([0x82, 0x04, 0x00, 0x01, 0x00, 0x05]))).toBeNull() // filter length past the end
    expect(decoder.lastError).not.toBe('')
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
