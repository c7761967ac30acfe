/**
 * The rules of a 5.0 property block that mqtt-packet does not enforce (it reads any known property
 * in any packet, turns a repeated one into an array, and never checks that the properties it read
 * fill exactly the declared Property Length). Run on the rare packets the full decoder reads
 * (CONNECT and its will, SUBSCRIBE, UNSUBSCRIBE, acks with properties, DISCONNECT, AUTH); PUBLISH
 * has its own fast path (publish.ts).
 *
 * - Each property must be one this packet may carry (5.0 table 2-4). A will carrying, say, a Topic
 *   Alias is the trigger of Mosquitto's CVE-2023-3592.
 * - A property other than User Property appears at most once (5.0 2.2.2.2: a Protocol Error).
 * - Values in range: Payload Format Indicator, Request Problem / Response Information 0 or 1;
 *   Receive Maximum, Maximum Packet Size and Subscription Identifier not 0.
 * - The block's properties end exactly at its declared length, and every Variable Byte Integer is
 *   minimally encoded [MQTT-1.5.5-1].
 * - At most MAX_USER_PROPERTIES User Properties. The spec sets no limit, but Mosquitto before
 *   2.0.12 spent CPU quadratic in their number (CVE-2021-41039): a few thousand, which fit in one
 *   packet under the default maxPacketSize, cost it seconds each.
 * Strings are checked for UTF-8 by the decoder's string hook (decode.ts).
 */

/**
 * User Properties one property block (or PUBLISH: publish.ts) may carry: a virtual patch for
 * CVE-2021-41039, far above what honest clients send (a handful of tags per message).
 */
export const MAX_USER_PROPERTIES = 128
/** checkPropertyBlock's answer (and the decoder's lastError) for more than MAX_USER_PROPERTIES. */
export const TOO_MANY_USER_PROPERTIES = `more than ${MAX_USER_PROPERTIES} user properties`

export type PropertyBlock = 'connect' | 'will' | 'subscribe' | 'unsubscribe' | 'ack' | 'disconnect' | 'auth'

type Kind = 1 | 2 | 4 | 0 | -1 | -2 // byte, two-byte, four-byte, varint, string/binary, string pair
const KINDS = new Int8Array(0x2b).fill(-9)
for (const id of [0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a]) KINDS[id] = 1
for (const id of [0x13, 0x21, 0x22, 0x23]) KINDS[id] = 2
for (const id of [0x02, 0x11, 0x18, 0x27]) KINDS[id] = 4
KINDS[0x0b] = 0
for (const id of [0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f]) KINDS[id] = -1
KINDS[0x26] = -2

const ALLOWED: Record<PropertyBlock, readonly number[]> = {
  connect: [0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
  will: [0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
  subscribe: [0x0b, 0x26],
  unsubscribe: [0x26],
  ack: [0x1f, 0x26],
  disconnect: [0x11, 0x1c, 0x1f, 0x26],
  auth: [0x15, 0x16, 0x1f, 0x26],
}
const ALLOWED_MASKS = Object.fromEntries(Object.entries(ALLOWED).map(([k, ids]) => {
  const mask = new Uint8Array(0x2b)
  for (const id of ids) mask[id] = 1
  return [k, mask]
})) as Record<PropertyBlock, Uint8Array>

/** Minimal varint at `pos`: [value, next position], or null when malformed or cut short. */
function varint(buf: Buffer, pos: number, end: number): [number, number] | null {
  let value = 0
  let mult = 1
  for (let i = 0; i < 4; i++) {
    if (pos >= end) return null
    const b = buf[pos++]!
    value += (b & 0x7f) * mult
    if ((b & 0x80) === 0) return i > 0 && b === 0 ? null : [value, pos]
    mult *= 128
  }
  return null
}

/**
 * Checks the property block that starts (with its Property Length) at `start` in `buf`, where the
 * decoder says it ended at `parsedEnd`. Returns null when valid, otherwise what is wrong.
 */
export function checkPropertyBlock(buf: Buffer, start: number, parsedEnd: number, block: PropertyBlock): string | null {
  const header = varint(buf, start, buf.length)
  if (header === null) return 'property length is not a minimal variable byte integer'
  const [length, first] = header
  const end = first + length
  if (end !== parsedEnd) return 'the properties do not fill the declared property length'
  const allowed = ALLOWED_MASKS[block]
  let seen = 0n
  let userProperties = 0
  let pos = first
  while (pos < end) {
    const id = buf[pos++]!
    if (id >= 0x2b || allowed[id] !== 1) return `property 0x${id.toString(16)} is not allowed in ${block}`
    if (id === 0x26) {
      if (++userProperties > MAX_USER_PROPERTIES) return TOO_MANY_USER_PROPERTIES
    } else {
      const bit = 1n << BigInt(id)
      if ((seen & bit) !== 0n) return `property 0x${id.toString(16)} appears twice`
      seen |= bit
    }
    const kind = KINDS[id] as Kind
    let value = -1
    if (kind === 1) value = buf[pos]!
    else if (kind === 2) value = buf.readUInt16BE(pos)
    else if (kind === 4) value = buf.readUInt32BE(pos)
    if (kind > 0) pos += kind
    else if (kind === 0) {
      const v = varint(buf, pos, end)
      if (v === null) return 'subscription identifier is not a minimal variable byte integer'
      value = v[0]
      pos = v[1]
    } else {
      pos += 2 + buf.readUInt16BE(pos)
      if (kind === -2) pos += 2 + buf.readUInt16BE(pos)
    }
    if ((id === 0x01 || id === 0x17 || id === 0x19) && value > 1) return `property 0x${id.toString(16)} must be 0 or 1`
    if ((id === 0x21 || id === 0x27 || id === 0x0b) && value === 0) return `property 0x${id.toString(16)} must not be 0`
  }
  // A string or binary value longer than what is left of the block (mqtt-packet reads it as null
  // and carries on) [MQTT-1.5.4], 5.0 2.2.2.
  if (pos !== end) return 'a property value overruns the property block'
  return null
}
