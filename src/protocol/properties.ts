/**
 * 5.0 property blocks of the packets the decoder reads (decode.ts): CONNECT and its will, CONNACK,
 * SUBSCRIBE, UNSUBSCRIBE, the acks, DISCONNECT and AUTH. PUBLISH has its own fast path (publish.ts).
 * Read into mqtt-packet's property object shapes (its `generate` re-encodes them), and checked:
 *
 * - Each property must be one this packet may carry (5.0 table 2-4); any other identifier makes the
 *   packet malformed (5.0 2.2.2.2). A will carrying, say, a Topic Alias is the trigger of
 *   Mosquitto's CVE-2023-3592.
 * - A property other than User Property appears at most once (a Protocol Error, 5.0 2.2.2.2).
 * - Values in range (a Protocol Error otherwise): Request Problem / Response Information, Maximum
 *   QoS and the CONNACK availability flags 0 or 1; Receive Maximum, Maximum Packet Size and
 *   Subscription Identifier not 0. A Payload Format Indicator other than 0 or 1 is passed: the spec
 *   defines 0 and 1 and names no fault for the rest, and the broker relays it.
 * - Strings held to the broker's UTF-8 rule (utf8.ts); the properties end exactly at the declared
 *   Property Length; every Variable Byte Integer is minimally encoded [MQTT-1.5.5-1].
 * - At most MAX_USER_PROPERTIES User Properties. The spec sets no limit, but Mosquitto before
 *   2.0.12 spent CPU quadratic in their number (CVE-2021-41039): a few thousand, which fit in one
 *   packet under the default maxPacketSize, cost it seconds each.
 */
import { DecodeFailure, DecodeFault, fail, Reader, type DecodeField } from './reader.js'

/**
 * User Properties one property block (or PUBLISH: publish.ts) may carry: a virtual patch for
 * CVE-2021-41039, far above what honest clients send (a handful of tags per message).
 */
export const MAX_USER_PROPERTIES = 128
/** The decoder's lastError for more than MAX_USER_PROPERTIES. */
export const TOO_MANY_USER_PROPERTIES = `more than ${MAX_USER_PROPERTIES} user properties`

export type PropertyBlock = 'connect' | 'will' | 'connack' | 'subscribe' | 'unsubscribe' | 'ack' | 'disconnect' | 'auth'

// flag: a byte read as a boolean, 0 or 1 only; byte: a byte read as a boolean, any value (mqtt-packet's
// shape for the Payload Format Indicator); int8: a byte read as a number.
type Kind = 'flag' | 'byte' | 'int8' | 'u16' | 'u32' | 'var' | 'string' | 'binary' | 'pair'

const NAMES: string[] = []
const KINDS: Kind[] = []
function define(id: number, name: string, kind: Kind): void {
  NAMES[id] = name
  KINDS[id] = kind
}
define(0x01, 'payloadFormatIndicator', 'byte')
define(0x02, 'messageExpiryInterval', 'u32')
define(0x03, 'contentType', 'string')
define(0x08, 'responseTopic', 'string')
define(0x09, 'correlationData', 'binary')
define(0x0b, 'subscriptionIdentifier', 'var')
define(0x11, 'sessionExpiryInterval', 'u32')
define(0x12, 'assignedClientIdentifier', 'string')
define(0x13, 'serverKeepAlive', 'u16')
define(0x15, 'authenticationMethod', 'string')
define(0x16, 'authenticationData', 'binary')
define(0x17, 'requestProblemInformation', 'flag')
define(0x18, 'willDelayInterval', 'u32')
define(0x19, 'requestResponseInformation', 'flag')
define(0x1a, 'responseInformation', 'string')
define(0x1c, 'serverReference', 'string')
define(0x1f, 'reasonString', 'string')
define(0x21, 'receiveMaximum', 'u16')
define(0x22, 'topicAliasMaximum', 'u16')
define(0x24, 'maximumQoS', 'int8')
define(0x25, 'retainAvailable', 'flag')
define(0x26, 'userProperties', 'pair')
define(0x27, 'maximumPacketSize', 'u32')
define(0x28, 'wildcardSubscriptionAvailable', 'flag')
define(0x29, 'subscriptionIdentifiersAvailable', 'flag')
define(0x2a, 'sharedSubscriptionAvailable', 'flag')

const ALLOWED: Record<PropertyBlock, readonly number[]> = {
  connect: [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
  will: [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
  connack: [0x11, 0x12, 0x13, 0x15, 0x16, 0x1a, 0x1c, 0x1f, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a],
  subscribe: [0x0b, 0x26],
  unsubscribe: [0x26],
  ack: [0x1f, 0x26],
  disconnect: [0x11, 0x1c, 0x1f, 0x26],
  auth: [0x15, 0x16, 0x1f, 0x26],
}
const ALLOWED_MASKS = Object.fromEntries(Object.entries(ALLOWED).map(([block, ids]) => {
  const mask = new Uint8Array(0x80)
  for (const id of ids) mask[id] = 1
  return [block, mask]
})) as Record<PropertyBlock, Uint8Array>

// Values that make a property a Protocol Error when 0 (5.0 3.1.2.11.3, 3.1.2.11.4, 3.8.2.1.2, 3.2.2.3.3, 3.2.2.3.6).
const NOT_ZERO = new Uint8Array(0x80)
for (const id of [0x0b, 0x21, 0x27]) NOT_ZERO[id] = 1

const USER_PROPERTY = 0x26

export type Properties = Record<string, unknown>

/**
 * Reads the property block at the reader's position (Property Length first) as the `block` of its
 * packet, reporting faults under `field`. Returns the properties, or undefined when there are none
 * (mqtt-packet leaves `properties` out then). The reader ends after the block.
 */
export function readProperties(r: Reader, block: PropertyBlock, field: DecodeField): Properties | undefined {
  const length = r.varint(field)
  if (length > r.left) fail(DecodeFault.Malformed, field, `${field}: the property length overruns the packet`)
  const end = r.pos + length
  if (length === 0) return undefined
  const p = new Reader(r.buf, r.pos, end, 'the declared property length')
  const maxUserProperties = r.maxUserProperties
  r.pos = end
  const allowed = ALLOWED_MASKS[block]
  const result: Properties = {}
  let userProperties: Record<string, string | string[]> | null = null
  let count = 0
  while (p.pos < end) {
    const id = p.byte(field)
    // An identifier is a Variable Byte Integer; every defined one fits in a byte (below 0x80).
    if (id >= 0x80 || allowed[id] !== 1) fail(DecodeFault.Malformed, field, `${field}: property 0x${id.toString(16)} is not allowed in ${block}`)
    if (id === USER_PROPERTY) {
      if (++count > maxUserProperties) fail(DecodeFault.TooManyUserProperties, field, TOO_MANY_USER_PROPERTIES)
      const name = p.string(field)
      const value = p.string(field)
      userProperties ??= Object.create(null) as Record<string, string | string[]>
      const previous = userProperties[name]
      if (previous === undefined) userProperties[name] = value
      else if (typeof previous === 'string') userProperties[name] = [previous, value]
      else previous.push(value)
      continue
    }
    const name = NAMES[id]!
    if (result[name] !== undefined) fail(DecodeFault.ProtocolError, field, `${field}: property 0x${id.toString(16)} appears twice`)
    let value: unknown
    switch (KINDS[id]!) {
      case 'flag': {
        const b = p.byte(field)
        if (b > 1) fail(DecodeFault.ProtocolError, field, `${field}: property 0x${id.toString(16)} must be 0 or 1`)
        value = b === 1
        break
      }
      case 'byte': value = p.byte(field) !== 0; break
      case 'int8': {
        const b = p.byte(field)
        // Maximum QoS is 0 or 1 (absent means 2) (5.0 3.2.2.3.4).
        if (b > 1) fail(DecodeFault.ProtocolError, field, `${field}: property 0x${id.toString(16)} must be 0 or 1`)
        value = b
        break
      }
      case 'u16': value = p.u16(field); break
      case 'u32': value = p.u32(field); break
      case 'var': value = p.varint(field); break
      case 'string': value = p.string(field); break
      case 'binary': value = p.binary(field); break
      case 'pair': break // handled above
    }
    if (NOT_ZERO[id] === 1 && value === 0) fail(DecodeFault.ProtocolError, field, `${field}: property 0x${id.toString(16)} must not be 0`)
    result[name] = value
  }
  if (userProperties !== null) result.userProperties = userProperties
  return result
}

/**
 * Checks the property block that starts (with its Property Length) at `start` in `buf`, within a
 * packet that ends at `end`. Returns null when valid, otherwise what is wrong.
 */
export function checkPropertyBlock(buf: Buffer, start: number, end: number, block: PropertyBlock): string | null {
  try {
    const r = new Reader(buf, start, end)
    r.maxUserProperties = MAX_USER_PROPERTIES
    readProperties(r, block, block === 'will' ? 'will_properties' : 'properties')
    return null
  } catch (err) {
    if (err instanceof DecodeFailure) return err.message
    throw err
  }
}

/**
 * The bytes the value of property `id` takes at `pos` in `buf`, for a block already read whole
 * (readProperties) so its ids and lengths are known to be sound.
 */
export function propertyValueSize(buf: Buffer, pos: number, id: number): number {
  switch (KINDS[id]!) {
    case 'flag': case 'byte': case 'int8': return 1
    case 'u16': return 2
    case 'u32': return 4
    case 'var': {
      let n = 1
      while ((buf[pos + n - 1]! & 0x80) !== 0) n++
      return n
    }
    case 'string': case 'binary': return 2 + buf.readUInt16BE(pos)
    case 'pair': {
      const first = 2 + buf.readUInt16BE(pos)
      return first + 2 + buf.readUInt16BE(pos + first)
    }
  }
}
