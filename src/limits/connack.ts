/** The CONNACK rewrite that tells 5.0 clients Moat's limits (used by the session on the broker → client path). */
import { generate, type IConnackPacket } from 'mqtt-packet'

/**
 * A 5.0 CONNACK that tells the client Moat's limits: Maximum Packet Size (added, or lowered to
 * maxPacketSize), Receive Maximum (lowered to maxInflight), Server Keep Alive (when Moat lowers the
 * client's keepalive). Null when the broker's CONNACK already says all that (forwarded unchanged).
 */
export function rewriteConnack(connack: IConnackPacket, maxPacketSize: number, maxInflight: number | null, requested: number, keepalive: number): Buffer | null {
  const props = { ...connack.properties }
  let changed = false
  if (props.maximumPacketSize === undefined || props.maximumPacketSize > maxPacketSize) {
    props.maximumPacketSize = maxPacketSize
    changed = true
  }
  if (maxInflight !== null && (props.receiveMaximum ?? 65_535) > maxInflight) {
    props.receiveMaximum = maxInflight
    changed = true
  }
  if (props.serverKeepAlive === undefined ? keepalive !== requested : props.serverKeepAlive > keepalive) {
    props.serverKeepAlive = keepalive
    changed = true
  }
  if (!changed) return null
  return generate({ cmd: 'connack', sessionPresent: connack.sessionPresent, reasonCode: connack.reasonCode ?? 0, properties: props }, { protocolVersion: 5 })
}
