import { describe, expect, it } from 'vitest'
import { checkPropertyBlock, MAX_USER_PROPERTIES, TOO_MANY_USER_PROPERTIES, type PropertyBlock } from '../../../src/protocol/properties.js'
import { PacketDecoder } from '../../../src/protocol/decode.js'
import { generate } from 'mqtt-packet'
import { varint } from '../../helpers/bytes.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/** Checks a block that is the whole buffer. */
function check(block: PropertyBlock, bytes: string): string | null {
  const buf = hex(bytes)
  return checkPropertyBlock(buf, 0, buf.length, block)
}

describe('5.0 property blocks (5.0 2.2.2, table 2-4)', () => {
  const valid: Array<[PropertyBlock, string]> = [
    ['connect', '00'],
    ['connect', '0a 11 0000001e 21 0010 17 01'],
    ['will', '0b 18 00000005 01 01 03 0001 74'],
    ['subscribe', '02 0b 07'],
    ['ack', '09 1f 0001 72 26 0000 0000'],
    ['disconnect', '05 11 00000000'],
    ['auth', '05 15 0002 6d 6d'],
    ['connack', '0b 22 000a 21 0014 12 0002 6964'],
    // Values other than 0 and 1 are not a fault the spec names, and the broker relays them.
    ['will', '02 01 02'],
    ['will', '02 01 ed'],
  ]
  for (const [block, bytes] of valid) it(`accepts ${block} ${bytes}`, () => expect(check(block, bytes)).toBeNull())

  const faults: Array<[string, PropertyBlock, string, RegExp]> = [
    ['a Topic Alias in a will (CVE-2023-3592)', 'will', '03 23 0001', /not allowed in will/],
    ['a Reason String in CONNECT', 'connect', '04 1f 0001 61', /not allowed in connect/],
    ['a Subscription Identifier in UNSUBSCRIBE', 'unsubscribe', '02 0b 01', /not allowed/],
    ['an identifier no packet has', 'ack', '02 7f 00', /not allowed/],
    ['a repeated Session Expiry Interval', 'disconnect', '0a 11 00000001 11 00000002', /twice/],
    ['Request Problem Information 2', 'connect', '02 17 02', /0 or 1/],
    ['Maximum QoS 2 in a CONNACK', 'connack', '02 24 02', /0 or 1/],
    ['a CONNACK property in CONNECT', 'connect', '03 13 0005', /not allowed in connect/],
    ['Maximum Packet Size 0', 'connect', '05 27 00000000', /must not be 0/],
    ['a property length longer than the packet', 'ack', '05 1f 0001', /overruns the packet/],
    ['a control character in a reason string', 'ack', '04 1f 0001 07', /refuses/],
    ['Receive Maximum 0', 'connect', '03 21 0000', /must not be 0/],
    ['Subscription Identifier 0', 'subscribe', '02 0b 00', /must not be 0/],
    ['a non-minimal Subscription Identifier', 'subscribe', '03 0b 8100', /minimal/],
    ['a non-minimal Property Length', 'subscribe', '8000', /minimal/],
    ['a user property value longer than the block (found by fuzz seed 5)', 'ack', '0c 1f 0004 21572248 26 0000 0e00', /overruns/],
    ['a reason string longer than the block', 'ack', '03 1f 0005', /overruns/],
  ]
  for (const [name, block, bytes, why] of faults) it(`refuses ${name}`, () => expect(check(block, bytes)).toMatch(why))

  it(`allows ${MAX_USER_PROPERTIES} user properties in a block and refuses one more (CVE-2021-41039)`, () => {
    const block = (n: number): Buffer => {
      const props = Buffer.concat(Array.from({ length: n }, () => hex('26 0001 6b 0001 76'))) // k = v
      return Buffer.concat([Buffer.from(varint(props.length)), props])
    }
    for (const name of ['connect', 'will', 'subscribe', 'unsubscribe', 'ack', 'disconnect', 'auth'] as const) {
      const ok = block(MAX_USER_PROPERTIES)
      expect(checkPropertyBlock(ok, 0, ok.length, name), name).toBeNull()
      const over = block(MAX_USER_PROPERTIES + 1)
      expect(checkPropertyBlock(over, 0, over.length, name), name).toBe(TOO_MANY_USER_PROPERTIES)
    }
  })

  it('the decoder reports too many user properties as such (the session answers Quota Exceeded, not Malformed Packet)', () => {
    const userProperties = Object.fromEntries(Array.from({ length: MAX_USER_PROPERTIES + 1 }, (_, i) => [`k${i}`, 'v']))
    const decoder = new PacketDecoder(5)
    expect(decoder.decode(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }], properties: { userProperties } }, { protocolVersion: 5 }))).toBeNull()
    expect(decoder.lastError).toBe(TOO_MANY_USER_PROPERTIES)
    delete userProperties.k0
    expect(decoder.decode(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }], properties: { userProperties } }, { protocolVersion: 5 }))).toMatchObject({ cmd: 'subscribe' })
  })

  it('refuses a block whose properties do not end at its declared length', () => {
    // Declared 1 byte; the Subscription Identifier after it needs 2.
    expect(check('subscribe', '01 0b 05')).toMatch(/declared property length/)
  })

  it('is applied by the decoder to client packets: a 5.0 SUBSCRIBE with a property block too short for its property', () => {
    const decoder = new PacketDecoder(5)
    expect(decoder.decode(hex('82 0b 0001 01 0b05 0003 6d2f61 00'))).toBeNull()
    expect(decoder.lastError).toMatch(/declared property length/)
    // The same SUBSCRIBE with the right Property Length (2) decodes.
    expect(decoder.decode(hex('82 0b 0001 02 0b05 0003 6d2f61 00'))).toMatchObject({ cmd: 'subscribe', properties: { subscriptionIdentifier: 5 } })
  })
})
