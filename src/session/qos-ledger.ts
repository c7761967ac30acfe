/**
 * The QoS 1/2 flows Moat takes part in, in both directions. Moat forwards most acks untouched, but
 * where it answers for the broker or for the client it must finish the flow it started, and the
 * checks need to know what is in flight:
 *
 * - QoS 2 publishes of the client that Moat refused and acknowledged itself (3.1.1): their PUBREL
 *   is Moat's to complete; the broker never saw the publish.
 * - QoS 2 publishes forwarded, until the client's PUBREL: a publish reusing such a packet id is a
 *   duplicate the broker must not deliver twice [MQTT-4.3.3] (a stream of them is the trigger of
 *   Mosquitto's CVE-2023-28366, a leak per duplicate).
 * - QoS 2 deliveries Moat held back and acknowledged to the broker: their PUBREL is Moat's too.
 * - The acks the client owes the broker (SessionState.acksOwed, read by the rate checks) and the
 *   client's publishes in flight (SessionState.inflight, the quota check's).
 *
 * Bookkeeping only: the session writes whatever answer a method says is due. The sets are made on
 * first use (an idle session holds none) and hold at most 65,535 packet ids each.
 */
import { PacketType } from '../protocol/packet-type.js'
import type { SessionState } from '../client/session-state.js'

/** The QoS bits of a PUBLISH fixed header. */
const QOS_BITS = 0x06

export class QosLedger {
  private readonly state: SessionState
  private refusedQos2: Set<number> | null = null
  private forwardedQos2: Set<number> | null = null
  private heldDeliveries: Set<number> | null = null

  constructor(state: SessionState) {
    this.state = state
  }

  // ---------------------------------------------------------------- client → broker

  /** A QoS 2 publish is forwarded: false when its packet id still awaits the client's PUBREL (a duplicate). */
  forwardQos2(packetId: number): boolean {
    const ids = this.forwardedQos2 ?? (this.forwardedQos2 = new Set())
    if (ids.has(packetId)) return false
    ids.add(packetId)
    return true
  }

  /** A QoS 2 publish Moat refused and answered with PUBREC itself (3.1.1). */
  refuseQos2(packetId: number): void {
    (this.refusedQos2 ?? (this.refusedQos2 = new Set())).add(packetId)
  }

  /** The client's PUBREL: true when it completes a publish Moat refused, so Moat answers PUBCOMP and the broker sees nothing. */
  clientPubrel(packetId: number): boolean {
    if (this.refusedQos2 !== null && this.refusedQos2.delete(packetId)) return true
    this.forwardedQos2?.delete(packetId)
    return false
  }

  // ---------------------------------------------------------------- broker → client

  /** A delivery passed on to the client (`flags`: its fixed header's): at QoS 1/2 the client owes an ack. */
  delivered(flags: number): void {
    if ((flags & QOS_BITS) !== 0) this.state.acksOwed += 1
  }

  /**
   * The broker's PUBACK, PUBREC or PUBCOMP (body at `buf[body, end)`), passed on to the client.
   * Returns true when it ended a publish the quota counted in flight.
   */
  brokerAck(buf: Buffer, body: number, end: number, type: number): boolean {
    const state = this.state
    if (type === PacketType.Pubrec) state.acksOwed += 1 // the client's PUBREL
    if (end < body + 2) return false
    // A PUBREC ends the flow only when it refuses (reason code 0x80 or above) [MQTT-4.3.3].
    const refusing = end > body + 2 && buf[body + 2]! >= 0x80
    if (type === PacketType.Pubrec) {
      if (!refusing) return false
      // A refusing 5.0 PUBREC frees the packet id of a forwarded QoS 2 publish.
      this.forwardedQos2?.delete(buf.readUInt16BE(body))
    }
    if (state.inflight === null) return false
    state.inflight.delete(buf.readUInt16BE(body))
    return true
  }

  /**
   * A delivery Moat holds back: returns the ack Moat owes the broker for it (PUBACK, PUBREC, or 0
   * at QoS 0), so the broker does not redeliver it forever. A QoS 2 one's PUBREL is then Moat's to answer.
   */
  holdDelivery(qos: number, packetId: number): number {
    if (qos === 1) return PacketType.Puback
    if (qos !== 2) return 0
    const held = this.heldDeliveries ?? (this.heldDeliveries = new Set())
    held.add(packetId)
    return PacketType.Pubrec
  }

  /** The broker's PUBREL (`frame`, body at `bodyOffset`): true when it releases a delivery Moat held, so Moat answers PUBCOMP. */
  brokerPubrel(frame: Buffer, bodyOffset: number): boolean {
    if (this.heldDeliveries !== null && frame.length >= bodyOffset + 2 && this.heldDeliveries.delete(frame.readUInt16BE(bodyOffset))) return true
    this.state.acksOwed += 1 // the client's PUBCOMP
    return false
  }
}
