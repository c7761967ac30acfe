/**
 * The CONNACK rewrite that tells 5.0 clients Moat's limits (used by the session on the broker →
 * client path). The broker's bytes are kept as they are: a property Moat lowers is overwritten in
 * place (same width), one it adds goes at the end of the property block, and nothing else moves.
 */
import type { IConnackPacket } from 'mqtt-packet'
import { propertyValueSize } from '../protocol/properties.js'
import { encodeVarint, readVarint, varintSize } from '../protocol/framer.js'

/** Caps at or above the largest Remaining Length are not announced: no packet is refused by them in practice. */
const NO_CAP = 268_435_455

const SERVER_KEEP_ALIVE = 0x13
const RECEIVE_MAXIMUM = 0x21
const MAXIMUM_PACKET_SIZE = 0x27

/**
 * A 5.0 CONNACK (`frame`, its variable header at `bodyOffset`, decoded as `connack`) that tells the
 * client Moat's limits: Maximum Packet Size (added, or lowered to maxPacketSize, when below what
 * the broker announced), Receive Maximum (lowered to maxInflight), Server Keep Alive (when Moat
 * lowers the client's keepalive `requested` to `keepalive`). Null when the broker's CONNACK
 * already says all that (forwarded unchanged).
 */
export function rewriteConnack(frame: Buffer, bodyOffset: number, connack: IConnackPacket, maxPacketSize: number, maxInflight: number | null, requested: number, keepalive: number): Buffer | null {
  const props = connack.properties ?? {}
  const set = new Map<number, number>()
  // Announced only where it tells the client something: below the broker's own announcement and
  // below what any MQTT packet can reach.
  if (maxPacketSize < (props.maximumPacketSize ?? NO_CAP)) set.set(MAXIMUM_PACKET_SIZE, maxPacketSize)
  if (maxInflight !== null && (props.receiveMaximum ?? 65_535) > maxInflight) set.set(RECEIVE_MAXIMUM, maxInflight)
  if (props.serverKeepAlive === undefined ? keepalive !== requested : props.serverKeepAlive > keepalive) set.set(SERVER_KEEP_ALIVE, keepalive)
  if (set.size === 0) return null
  return withProperties(frame, bodyOffset, set)
}

/** `frame` with the fixed-width integer properties in `set` given their values (in place, or added at the end of the property block). */
function withProperties(frame: Buffer, bodyOffset: number, set: Map<number, number>): Buffer {
  const blockAt = bodyOffset + 2 // after the acknowledge flags and the reason code
  const blockLength = readVarint(frame, blockAt, frame.length)
  const first = blockAt + varintSize(blockLength)
  const end = first + blockLength
  const head = Buffer.from(frame.subarray(0, end))
  for (let pos = first; pos < end;) {
    const id = frame[pos]!
    const value = set.get(id)
    if (value !== undefined) {
      writeInteger(head, pos + 1, id, value)
      set.delete(id)
    }
    pos += 1 + propertyValueSize(frame, pos + 1, id)
  }
  if (set.size === 0) return Buffer.concat([head, frame.subarray(end)])
  const added: number[] = []
  for (const [id, value] of set) {
    const bytes = Buffer.alloc(id === MAXIMUM_PACKET_SIZE ? 5 : 3)
    bytes[0] = id
    writeInteger(bytes, 1, id, value)
    added.push(...bytes)
  }
  const properties = Buffer.concat([head.subarray(first, end), Buffer.from(added)])
  const flagsAndCode = frame.subarray(bodyOffset, blockAt)
  const body = Buffer.concat([flagsAndCode, encodeVarint(properties.length), properties, frame.subarray(end)])
  return Buffer.concat([Buffer.from([frame[0]!]), encodeVarint(body.length), body])
}

function writeInteger(buf: Buffer, at: number, id: number, value: number): void {
  if (id === MAXIMUM_PACKET_SIZE) buf.writeUInt32BE(value, at)
  else buf.writeUInt16BE(value, at)
}
