/**
 * Packets Moat writes itself when it answers or acts for a peer: acknowledgements with a packet id,
 * SUBACKs (local or merged with the broker's), and the UNSUBSCRIBE that revokes a subscription.
 * None is on the hot path: they are built per event.
 */
import { varintSize } from './framer.js'
import { PacketType } from './packet-type.js'

const PUBACK_PUBREC_CODES = new Uint8Array(256)
for (const code of [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]) PUBACK_PUBREC_CODES[code] = 1
const PUBREL_PUBCOMP_CODES = new Uint8Array(256)
for (const code of [0x00, 0x92]) PUBREL_PUBCOMP_CODES[code] = 1

/** Whether `code` is a reason code a 5.0 PUBACK/PUBREC (or PUBREL/PUBCOMP) may carry (5.0 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1). */
export function isAckReasonCode(type: number, code: number): boolean {
  return (type === PacketType.Puback || type === PacketType.Pubrec ? PUBACK_PUBREC_CODES : PUBREL_PUBCOMP_CODES)[code] === 1
}

/** A two-byte-id acknowledgement: PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP, without reason code. */
export function ack(type: number, packetId: number): Buffer {
  const flags = type === PacketType.Pubrel ? 0x02 : 0
  return Buffer.from([(type << 4) | flags, 0x02, packetId >> 8, packetId & 0xff])
}

function writeVarint(buf: Buffer, pos: number, value: number): number {
  do {
    let byte = value % 128
    value = Math.floor(value / 128)
    if (value > 0) byte |= 0x80
    buf[pos++] = byte
  } while (value > 0)
  return pos
}

/** A SUBACK with these return/reason codes; `properties` is the 5.0 property block (length included) or null on 3.x. */
export function suback(packetId: number, codes: readonly number[], properties: Buffer | null): Buffer {
  const remaining = 2 + (properties?.length ?? 0) + codes.length
  const buf = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining)
  buf[0] = PacketType.Suback << 4
  let pos = writeVarint(buf, 1, remaining)
  buf.writeUInt16BE(packetId, pos)
  pos += 2
  if (properties !== null) pos += properties.copy(buf, pos)
  for (const code of codes) buf[pos++] = code
  return buf
}

/** An UNSUBSCRIBE of `filters` (5.0: with an empty property block). */
export function unsubscribe(packetId: number, filters: readonly string[], version: number): Buffer {
  let remaining = 2 + (version === 5 ? 1 : 0)
  for (const f of filters) remaining += 2 + Buffer.byteLength(f)
  const buf = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining)
  buf[0] = (PacketType.Unsubscribe << 4) | 0x02
  let pos = writeVarint(buf, 1, remaining)
  buf.writeUInt16BE(packetId, pos)
  pos += 2
  if (version === 5) buf[pos++] = 0
  for (const f of filters) {
    const length = buf.write(f, pos + 2)
    buf.writeUInt16BE(length, pos)
    pos += 2 + length
  }
  return buf
}

/**
 * Reads a SUBACK (or UNSUBACK) frame: packet id, the 5.0 property block (length included) and where
 * the codes start. Returns null when the frame is too short to hold them.
 */
export function readAckWithCodes(frame: Buffer, bodyOffset: number, version: number): { packetId: number; properties: Buffer | null; codesStart: number } | null {
  if (frame.length < bodyOffset + 2) return null
  const packetId = frame.readUInt16BE(bodyOffset)
  let pos = bodyOffset + 2
  let properties: Buffer | null = null
  if (version === 5) {
    let length = 0
    let shift = 0
    const start = pos
    for (let i = 0; i < 4; i++) {
      if (pos >= frame.length) return null
      const byte = frame[pos++]!
      length += (byte & 0x7f) * 2 ** shift
      shift += 7
      if ((byte & 0x80) === 0) break
    }
    if (pos + length > frame.length) return null
    properties = frame.subarray(start, pos + length)
    pos += length
  }
  return { packetId, properties, codesStart: pos }
}
