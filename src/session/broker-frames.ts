/**
 * The broker side's framer sink: every frame from the broker, after the session dialled it.
 * Deliveries and acks go on to the client in place, as the broker's bytes; the rest get a Buffer of
 * their own. Moat steps in only where it must: a delivery the client may not read is held back and
 * acknowledged to the broker, a SUBACK is merged with Moat's own refusals, the UNSUBACK of Moat's
 * own revocation is swallowed, and the CONNACK opens the session (5.0: carrying Moat's limits).
 */
import type { IConnackPacket } from 'mqtt-packet'
import { Action } from '../checks/verdict.js'
import { rewriteConnack } from '../limits/connack.js'
import { ack } from '../protocol/acks.js'
import { FrameError, type FrameSink } from '../protocol/framer.js'
import { PacketType } from '../protocol/packet-type.js'
import { PublishView, readPublish } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { ownedCopy } from '../net/lent-reads.js'
import { unavailableAnswer } from './fault-answer.js'
import { Phase } from './phase.js'
import type { Session } from './session.js'

export class BrokerFrames implements FrameSink {
  private readonly session: Session
  /** Broker → client PUBLISH, read only when deliveries are inspected (outbound ACL, revocations, 5.0 aliases); made on first use. */
  private deliveryViewSlot: PublishView | null = null
  /** The broker's CONNACK went to the client (accepting or not). */
  connackSeen = false

  constructor(session: Session) {
    this.session = session
  }

  /** A broker frame `buf[start, end)`. */
  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    const session = this.session
    if (session.phase >= Phase.Closing) return false
    const stats = session.ctx.stats
    stats.packetsFromBroker[type]! += 1
    stats.bytesFromBroker[type]! += end - start
    switch (type) {
      case PacketType.Publish:
        if (this.inspectDeliveries && !this.onDelivery(buf, start, end, flags, bodyOffset)) return true
        session.ledger.delivered(flags)
        session.toClient.add(buf, start, end)
        return true
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubcomp:
        // A 3.1.1 client held for its in-flight quota (checks/quota.ts) may go on: wake it now.
        if (session.ledger.brokerAck(buf, start + bodyOffset, end, type) && session.state.version < 5) session.throttled?.wakeNow()
        session.toClient.add(buf, start, end)
        return true
    }
    let frame = ownedCopy(buf, start, end)
    switch (type) {
      case PacketType.Suback:
        frame = session.book.onSuback(frame, bodyOffset, session.state)
        break
      case PacketType.Unsuback:
        if (session.book.onUnsuback(frame, bodyOffset)) return true // answers Moat's own revocation
        break
      case PacketType.Pubrel:
        if (session.ledger.brokerPubrel(frame, bodyOffset)) {
          session.toBroker.write(ack(PacketType.Pubcomp, frame.readUInt16BE(bodyOffset)))
          return true
        }
        break
      case PacketType.Connack: {
        if (this.connackSeen) return this.violation('a second CONNACK')
        const code = frame.length > bodyOffset + 1 ? frame[bodyOffset + 1]! : 0xff
        // The client gets its CONNACK first, then the line is logged: a log line is a synchronous
        // write, and would otherwise be part of every CONNECT's latency.
        session.toClient.addFrame(this.onConnack(frame, code, bodyOffset))
        session.toClient.flush()
        session.audit.opened(code)
        return true
      }
    }
    session.toClient.addFrame(frame)
    return true
  }

  onFrameError(error: FrameError, declaredSize: number): void {
    this.violation(error === FrameError.TooLarge ? `packet of ${declaredSize} bytes over the cap` : 'malformed remaining length')
  }

  /**
   * Whether broker PUBLISHes are read at all: when outbound checks exist, while a revocation is in
   * flight, or on 5.0 when the client accepts topic aliases (their bindings must be followed from
   * the first delivery for a later check to know an alias-only delivery's topic).
   */
  private get inspectDeliveries(): boolean {
    const session = this.session
    return session.checks!.hasDeliverChecks || session.book.revokingAny || session.state.clientAcceptsAliases
  }

  /**
   * A delivery from the broker: resolve its topic alias, then hold it back when the client may not
   * read the topic (outbound ACL) or only a revoked subscription carries it. A held QoS 1/2
   * delivery is acknowledged to the broker by Moat, so it is not redelivered forever.
   * Returns false when the delivery must not reach the client.
   */
  private onDelivery(buf: Buffer, start: number, end: number, flags: number, bodyOffset: number): boolean {
    const view = this.deliveryViewSlot ?? (this.deliveryViewSlot = new PublishView())
    const session = this.session
    const state = session.state
    if (readPublish(buf, flags, bodyOffset, state.version, false, view, start, end) !== 0) {
      view.clear()
      return true // the client's own parser judges a broker's malformed packet; Moat does not hide it
    }
    const alias = view.topicAlias
    if (alias !== 0) {
      const aliases = state.brokerAliases ?? (state.brokerAliases = [])
      if (view.topicLength > 0) aliases[alias] = view.topic
      else view.topic = aliases[alias] ?? ''
    }
    const checks = session.checks!
    const book = session.book
    const allowed = view.topic !== '' || alias === 0
      ? (!checks.hasDeliverChecks || checks.runDeliver(view, state).action === Action.Forward) && !(book.revokingAny && book.isRevokedDelivery(view.topic, state))
      : false // an alias the broker never bound: nothing to judge it by
    const qos = view.qos
    const packetId = view.packetId
    view.clear()
    if (allowed) return true
    session.ctx.stats.deliveriesDenied += 1
    const owed = session.ledger.holdDelivery(qos, packetId)
    if (owed !== 0) session.toBroker.write(ack(owed, packetId))
    return false
  }

  /** Returns the CONNACK to send on: the broker's bytes, or (5.0) a re-encoding carrying Moat's limits. */
  private onConnack(frame: Buffer, code: number, bodyOffset: number): Buffer {
    this.connackSeen = true
    const session = this.session
    const state = session.state
    state.connected = code === 0
    if (!state.connected) return frame
    const limits = session.ctx.policy.config.limits
    const requested = state.keepalive
    let keepalive = requested
    if (limits.maxKeepalive !== null && (keepalive === 0 || keepalive > limits.maxKeepalive)) keepalive = limits.maxKeepalive
    const moatLimit = keepalive
    if (state.version === 5) {
      const connack = session.decoding.decode(frame, Infinity) as IConnackPacket | null
      state.topicAliasMaximum = connack?.properties?.topicAliasMaximum ?? 0
      if (connack !== null) {
        const rewritten = rewriteConnack(frame, bodyOffset, connack, limits.maxPacketSize, limits.maxInflight, state.keepalive, keepalive)
        const brokerKeepalive = connack.properties?.serverKeepAlive
        if (brokerKeepalive !== undefined && brokerKeepalive < keepalive) keepalive = brokerKeepalive
        if (rewritten !== null) frame = rewritten
      }
    }
    state.keepalive = keepalive
    if (keepalive > 0) session.keepalive.start(keepalive, keepalive === moatLimit && moatLimit !== requested)
    return frame
  }

  /** The broker broke the protocol: the client is told the service is gone, as far as its version allows. */
  private violation(detail: string): boolean {
    const session = this.session
    session.audit.log.error({ event: 'upstream_protocol_error', error: detail }, 'broker sent something it must not')
    session.close('upstream_protocol_error', unavailableAnswer(session.state, this.connackSeen, ReasonCode.ImplementationSpecificError))
    return false
  }
}
