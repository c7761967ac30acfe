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
import type { Stats } from '../metrics/stats.js'
import { ack } from '../protocol/acks.js'
import { FrameError, type FrameSink } from '../protocol/framer.js'
import { PacketType } from '../protocol/packet-type.js'
import { PublishView, readPublish } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { ownedCopy } from '../net/lent-reads.js'
import type { SessionContext } from './context.js'
import { unavailableAnswer } from './fault-answer.js'
import { Phase } from './phase.js'
import type { QosLedger } from './qos-ledger.js'
import type { RunWriter } from './run-writer.js'
import type { Session } from './session.js'
import type { SessionState } from './state.js'
import type { SubscriptionBook } from './subscription-book.js'
import type { Throttle } from './throttle.js'

export class BrokerFrames implements FrameSink {
  private readonly session: Session
  private readonly ctx: SessionContext
  private readonly state: SessionState
  private readonly stats: Stats
  private readonly toClient: RunWriter
  private readonly toBroker: RunWriter
  private readonly ledger: QosLedger
  private readonly throttle: Throttle
  private readonly book: SubscriptionBook
  /** Broker → client PUBLISH, read only when deliveries are inspected (outbound ACL, revocations, 5.0 aliases); made on first use. */
  private deliveryViewSlot: PublishView | null = null
  /** The broker's CONNACK went to the client (accepting or not). */
  connackSeen = false

  constructor(session: Session, ctx: SessionContext) {
    this.session = session
    this.ctx = ctx
    this.state = session.state
    this.stats = ctx.stats
    this.toClient = session.toClient
    this.toBroker = session.toBroker
    this.ledger = session.ledger
    this.throttle = session.throttle
    this.book = session.book
  }

  /** A broker frame `buf[start, end)`. */
  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    if (this.session.phase >= Phase.Closing) return false
    const stats = this.stats
    stats.packetsFromBroker[type]! += 1
    stats.bytesFromBroker[type]! += end - start
    switch (type) {
      case PacketType.Publish:
        if (this.inspectDeliveries && !this.onDelivery(buf, start, end, flags, bodyOffset)) return true
        this.ledger.delivered(flags)
        this.toClient.add(buf, start, end)
        return true
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubcomp:
        // A 3.1.1 client held for its in-flight quota (checks/quota.ts) may go on: wake it now.
        if (this.ledger.brokerAck(buf, start + bodyOffset, end, type) && this.state.version < 5) this.throttle.wakeNow()
        this.toClient.add(buf, start, end)
        return true
    }
    let frame = ownedCopy(buf, start, end)
    switch (type) {
      case PacketType.Suback:
        frame = this.book.onSuback(frame, bodyOffset, this.state)
        break
      case PacketType.Unsuback:
        if (this.book.onUnsuback(frame, bodyOffset)) return true // answers Moat's own revocation
        break
      case PacketType.Pubrel:
        if (this.ledger.brokerPubrel(frame, bodyOffset)) {
          this.toBroker.write(ack(PacketType.Pubcomp, frame.readUInt16BE(bodyOffset)))
          return true
        }
        break
      case PacketType.Connack: {
        if (this.connackSeen) return this.violation('a second CONNACK')
        const code = frame.length > bodyOffset + 1 ? frame[bodyOffset + 1]! : 0xff
        // The client gets its CONNACK first, then the line is logged: a log line is a synchronous
        // write, and would otherwise be part of every CONNECT's latency.
        this.toClient.addFrame(this.onConnack(frame, code, bodyOffset))
        this.toClient.flush()
        this.session.audit.opened(code)
        return true
      }
    }
    this.toClient.addFrame(frame)
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
    return this.session.checks!.hasDeliverChecks || this.book.revokingAny || this.state.clientAcceptsAliases
  }

  /**
   * A delivery from the broker: resolve its topic alias, then hold it back when the client may not
   * read the topic (outbound ACL) or only a revoked subscription carries it. A held QoS 1/2
   * delivery is acknowledged to the broker by Moat, so it is not redelivered forever.
   * Returns false when the delivery must not reach the client.
   */
  private onDelivery(buf: Buffer, start: number, end: number, flags: number, bodyOffset: number): boolean {
    const view = this.deliveryViewSlot ?? (this.deliveryViewSlot = new PublishView())
    const state = this.state
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
    const checks = this.session.checks!
    const book = this.book
    const allowed = view.topic !== '' || alias === 0
      ? (!checks.hasDeliverChecks || checks.runDeliver(view, state).action === Action.Forward) && !(book.revokingAny && book.isRevokedDelivery(view.topic, state))
      : false // an alias the broker never bound: nothing to judge it by
    const qos = view.qos
    const packetId = view.packetId
    view.clear()
    if (allowed) return true
    this.stats.deliveriesDenied += 1
    const owed = this.ledger.holdDelivery(qos, packetId)
    if (owed !== 0) this.toBroker.write(ack(owed, packetId))
    return false
  }

  /** Returns the CONNACK to send on: the broker's bytes, or (5.0) a re-encoding carrying Moat's limits. */
  private onConnack(frame: Buffer, code: number, bodyOffset: number): Buffer {
    this.connackSeen = true
    const state = this.state
    state.connected = code === 0
    if (!state.connected) return frame
    const limits = this.ctx.policy.config.limits
    const requested = state.keepalive
    let keepalive = requested
    if (limits.maxKeepalive !== null && (keepalive === 0 || keepalive > limits.maxKeepalive)) keepalive = limits.maxKeepalive
    const moatLimit = keepalive
    if (state.version === 5) {
      const connack = this.session.decoding.decode(frame, Infinity) as IConnackPacket | null
      state.topicAliasMaximum = connack?.properties?.topicAliasMaximum ?? 0
      if (connack !== null) {
        const rewritten = rewriteConnack(frame, bodyOffset, connack, limits.maxPacketSize, limits.maxInflight, state.keepalive, keepalive)
        const brokerKeepalive = connack.properties?.serverKeepAlive
        if (brokerKeepalive !== undefined && brokerKeepalive < keepalive) keepalive = brokerKeepalive
        if (rewritten !== null) frame = rewritten
      }
    }
    state.keepalive = keepalive
    if (keepalive > 0) this.session.keepalive.start(keepalive, keepalive === moatLimit && moatLimit !== requested)
    return frame
  }

  /** The broker broke the protocol: the client is told the service is gone, as far as its version allows. */
  private violation(detail: string): boolean {
    this.session.audit.log.error({ event: 'upstream_protocol_error', error: detail }, 'broker sent something it must not')
    this.session.close('upstream_protocol_error', unavailableAnswer(this.state, this.connackSeen, ReasonCode.ImplementationSpecificError))
    return false
  }
}
