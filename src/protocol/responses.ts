/**
 * Answers Moat writes to a client itself, encoded once and cached (they are constant per
 * version and code). The session picks the one that fits the client's protocol version.
 */
import { connackReturnCodeFor } from './reason.js'

const cache = new Map<number, Buffer>()

function cached(key: number, build: () => number[]): Buffer {
  let buf = cache.get(key)
  if (buf === undefined) {
    buf = Buffer.from(build())
    cache.set(key, buf)
  }
  return buf
}

/**
 * A refusing CONNACK for a client of `version` (3, 4 or 5), carrying the 5.0 reason code `reason`.
 * 3.1/3.1.1 have only six return codes: returns null when the reason has none, and the client is
 * answered by closing the connection.
 */
export function connackRefusal(version: number, reason: number): Buffer | null {
  if (version === 5) return cached(0x500 | reason, () => [0x20, 0x03, 0x00, reason, 0x00])
  const code = connackReturnCodeFor(reason)
  if (code === null) return null
  return cached(0x300 | code, () => [0x20, 0x02, 0x00, code])
}

/** The 3.1.1 CONNACK "unacceptable protocol version" sent when the level is unknown [MQTT-3.1.2-2]. */
export const CONNACK_UNACCEPTABLE_PROTOCOL = Buffer.from([0x20, 0x02, 0x00, 0x01])

/**
 * A 5.0 DISCONNECT with a reason code in the short form the spec allows when there are no
 * properties (Remaining Length 1), which is also how Mosquitto encodes its own.
 */
export function disconnectV5(reason: number): Buffer {
  return cached(0xe00 | reason, () => [0xe0, 0x01, reason])
}

/**
 * A 5.0 PUBACK (QoS 1) or PUBREC (QoS 2) refusing a publish with `reason` (e.g. 0x87); the packet id
 * varies, so this one is built per refusal (a refusal is not the hot path).
 */
export function publishRefusalV5(type: 4 | 5, packetId: number, reason: number): Buffer {
  return Buffer.from([type << 4, 0x03, packetId >> 8, packetId & 0xff, reason])
}
