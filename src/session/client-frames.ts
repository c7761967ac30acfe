/**
 * The client side's frames after CONNECT: reserved flags and packet rates first, then each packet
 * type. PUBLISH, the acks and PINGREQ are judged in place, on the Framer's bytes, and forwarded as
 * those bytes; the rarer packets get a Buffer of their own and go through the full decoder.
 * Refusals are answered in the client's protocol version; the QoS bookkeeping is the QosLedger's.
 *
 * Also the subscriptions' review after a reload, which acts for the client at the broker.
 */
import { generate, type ISubscribePacket, type ISubscription, type IUnsubscribePacket, type Packet } from 'mqtt-packet'
import type { SessionChecks } from '../checks/chain.js'
import type { DenyReason } from '../stats/reasons.js'
import { Action, reject, type Verdict } from '../checks/verdict.js'
import { ownedCopy } from '../net/lent-reads.js'
import { ack, isAckReasonCode, suback } from '../protocol/acks.js'
import { DecodeFault } from '../protocol/decode.js'
import { FLAGS_ANY, PacketType, packetTypeNames, requiredFlags } from '../protocol/packet-type.js'
import { TOO_MANY_USER_PROPERTIES } from '../protocol/properties.js'
import { PublishView, readPublish } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { publishRefusalV5 } from '../protocol/responses.js'
import { faultAnswer } from './fault-answer.js'
import { Paused } from './flow-control.js'
import type { Session } from './session.js'
import { MAX_PENDING_SUBSCRIBES, MAX_TRACKED_SUBSCRIPTIONS } from './subscription-book.js'
import type { FrameDispatcher } from './throttle.js'

/** The DUP bit of a fixed header. */
const DUP = 0x08

/** A 5.0 SUBACK Moat writes itself carries no properties. */
const EMPTY_PROPERTIES = Buffer.from([0])
const QUOTA_REFUSAL = reject(ReasonCode.QuotaExceeded, 'quota_exceeded')

function topicOf(s: ISubscription): string {
  return s.topic
}
function qosOf(s: ISubscription): number {
  return s.qos
}

/** The deny reason that names a 5.0 reason code found while reading a packet. */
function faultReason(code: number): DenyReason {
  switch (code) {
    case ReasonCode.TopicNameInvalid: return 'invalid_topic'
    case ReasonCode.TopicFilterInvalid: return 'invalid_topic_filter'
    case ReasonCode.TopicAliasInvalid: return 'topic_alias_invalid'
    case ReasonCode.ProtocolError: return 'protocol_error'
    case ReasonCode.PacketTooLarge: return 'packet_too_large'
    case ReasonCode.QuotaExceeded: return 'too_many_user_properties' // the only cap readPublish answers
    default: return 'malformed_packet'
  }
}

export class ClientFrames implements FrameDispatcher {
  /** What it shares with the session is read through it: no copies of its references (memory per connection). */
  private readonly session: Session
  /** Client → broker PUBLISH; made on the first (an idle session holds none). */
  private publishViewSlot: PublishView | null = null

  constructor(session: Session) {
    this.session = session
  }

  private get publishView(): PublishView {
    if (this.publishViewSlot !== null) return this.publishViewSlot
    const view = this.publishViewSlot = new PublishView()
    view.maxUserProperties = this.session.userPropertyCap
    return view
  }

  /** A reload changed the User Property cap (virtual patches). */
  capChanged(cap: number): void {
    if (this.publishViewSlot !== null) this.publishViewSlot.maxUserProperties = cap
  }

  /** The full decoder's reading of a packet off the fast path (null: see decodeFailure). */
  private decode(frame: Buffer): Packet | null {
    return this.session.decoding.decode(frame, this.session.userPropertyCap)
  }

  /**
   * A client broke the protocol or a check refused it with Disconnect: count, log, answer in its
   * version (5.0 DISCONNECT with the reason, only once the broker's CONNACK went out
   * [MQTT-3.14.0-1]), and close; `quiet`: a bare close, as the broker gives for that fault.
   * Returns false so the framer stops.
   */
  violation(why: DenyReason, reason: number, type: number, quiet = false, decider: SessionChecks | null = null): boolean {
    const session = this.session
    const state = session.state
    session.audit.clientRefused(why, reason, type, decider)
    session.close(why, quiet ? null : faultAnswer(why, reason, type, state.version, state.connected))
    return false
  }

  /** A check's verdict closes the client: the line names the check and its rule. */
  refusedBy(verdict: Verdict, type: number): boolean {
    return this.violation(verdict.why, verdict.reason, type, false, this.session.checks)
  }

  /** A check said "not now": the frame waits in the Throttle, and the client is not read meanwhile. */
  private hold(frame: Buffer, type: number, flags: number, bodyOffset: number): boolean {
    const session = this.session
    session.throttle.hold(frame, type, flags, bodyOffset, session.state.throttleUntil)
    session.flow.pauseClient(Paused.Throttled)
    return false
  }

  /**
   * A client frame `buf[start, end)` after CONNECT (also a throttled frame, replayed when its wait
   * is over). PUBLISH, the acks and PINGREQ are handled in place; the rest get a Buffer of their own.
   */
  dispatch(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    const session = this.session
    const required = requiredFlags[type]!
    // Reserved flag bits MUST have their listed values; otherwise close [MQTT-2.2.2-1], [MQTT-2.2.2-2].
    // MQTT 3.1's PUBREL, SUBSCRIBE and UNSUBSCRIBE (QoS 1 in its terms) may carry DUP.
    if (required !== FLAGS_ANY && flags !== required && !(flags === (required | DUP) && required === 2 && session.state.version === 3)) {
      return this.violation('reserved_flags', ReasonCode.MalformedPacket, type)
    }
    if (type !== PacketType.Publish && type !== PacketType.Disconnect && type !== PacketType.Connect) {
      const verdict = session.checks!.runPacket(type, end - start, session.state)
      if (verdict.action === Action.Throttle) return this.hold(ownedCopy(buf, start, end), type, flags, bodyOffset)
      if (verdict.action !== Action.Forward) return this.refusedBy(verdict, type)
    }
    switch (type) {
      case PacketType.Publish:
        return this.onPublish(buf, start, end, flags, bodyOffset)
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubrel:
      case PacketType.Pubcomp:
        return this.onAck(buf, start, end, type, bodyOffset)
      case PacketType.Subscribe:
        return this.onSubscribe(ownedCopy(buf, start, end))
      case PacketType.Unsubscribe:
        return this.onUnsubscribe(ownedCopy(buf, start, end))
      case PacketType.Pingreq:
        if (end - start !== 2) return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
        session.toBroker.add(buf, start, end)
        return true
      case PacketType.Disconnect:
        return this.onDisconnect(ownedCopy(buf, start, end), bodyOffset)
      case PacketType.Auth:
        if (session.state.version !== 5) break
        return this.onAuth(ownedCopy(buf, start, end))
      case PacketType.Connect:
        // A second CONNECT is a protocol error: close the connection [MQTT-3.1.0-2].
        return this.violation('duplicate_connect', ReasonCode.ProtocolError, type)
    }
    // CONNACK, SUBACK, UNSUBACK, PINGRESP, type 0, and AUTH before 5.0 never come from a client.
    return this.violation('forbidden_packet_type', ReasonCode.ProtocolError, type)
  }

  private onPublish(buf: Buffer, start: number, end: number, flags: number, bodyOffset: number): boolean {
    const session = this.session
    const state = session.state
    const view = this.publishView
    const fault = readPublish(buf, flags, bodyOffset, state.version, true, view, start, end)
    if (fault !== 0) {
      // A string property the broker refuses: it closes without a DISCONNECT.
      const quiet = view.badString === 'property'
      view.clear()
      return this.violation(faultReason(fault), fault, PacketType.Publish, quiet)
    }
    const verdict = session.checks!.runPublish(view, state)
    const qos = view.qos
    const packetId = view.packetId
    if (verdict.action === Action.Forward) {
      if (qos === 2 && !session.ledger.forwardQos2(packetId)) {
        view.clear()
        session.toClient.write(ack(PacketType.Pubrec, packetId))
        return true
      }
      // A forwarded publish with a topic name and an alias (re)binds the alias [MQTT-3.3.2-12].
      if (view.topicAlias !== 0 && view.topicLength > 0) state.bindClientAlias(view.topicAlias, view.topic)
      view.clear()
      session.toBroker.add(buf, start, end)
      return true
    }
    if (verdict.action === Action.Throttle) {
      view.clear()
      return this.hold(ownedCopy(buf, start, end), PacketType.Publish, flags, bodyOffset)
    }
    const topic = view.topic
    view.clear()
    return this.refusePublish(verdict, qos, packetId, topic)
  }

  /**
   * A refused PUBLISH: Disconnect closes the client; Reject drops it, counted, and answers a QoS 1/2
   * publish so the client does not resend it forever: 5.0 PUBACK/PUBREC carrying the reason (which
   * ends a QoS 2 flow), 3.1.1 a plain PUBACK/PUBREC (it has no negative ack; the message is dropped,
   * as Mosquitto does for a denied publish), whose PUBREL Moat then answers itself.
   */
  private refusePublish(verdict: Verdict, qos: number, packetId: number, topic: string): boolean {
    if (verdict.action === Action.Disconnect) return this.refusedBy(verdict, PacketType.Publish)
    const session = this.session
    session.audit.rejected(verdict.why, verdict.reason, 'publish', topic, session.checks)
    if (qos === 0) return true
    const type = qos === 1 ? PacketType.Puback : PacketType.Pubrec
    if (session.state.version === 5) {
      session.toClient.write(publishRefusalV5(type, packetId, verdict.reason))
    } else {
      if (qos === 2) session.ledger.refuseQos2(packetId)
      session.toClient.write(ack(type, packetId))
    }
    return true
  }

  /** PUBACK, PUBREC, PUBREL, PUBCOMP (`buf[start, end)`): a non-zero packet id [MQTT-2.2.1-3], and the right length. */
  private onAck(buf: Buffer, start: number, end: number, type: number, bodyOffset: number): boolean {
    const session = this.session
    const body = start + bodyOffset
    const remaining = end - body
    const version = session.state.version
    if (remaining < 2 || (version < 5 && remaining !== 2) || buf.readUInt16BE(body) === 0) {
      return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
    }
    // 5.0 acks may carry a reason code and properties: let the full decoder judge those (rare);
    // a reason code alone is checked here (found by the fuzz suite: it went unchecked).
    if (remaining === 3 && !isAckReasonCode(type, buf[body + 2]!)) return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
    if (remaining > 3 && this.decode(ownedCopy(buf, start, end)) === null) return this.decodeFailure(type)
    const packetId = buf.readUInt16BE(body)
    if (type === PacketType.Pubrel && session.ledger.clientPubrel(packetId)) {
      session.toClient.write(ack(PacketType.Pubcomp, packetId))
      return true
    }
    session.toBroker.add(buf, start, end)
    return true
  }

  /** A SUBSCRIBE or UNSUBSCRIBE decoded, with its non-zero packet id; null: the client is closed for it. */
  private decodeWithId<P extends ISubscribePacket | IUnsubscribePacket>(frame: Buffer, type: number): P | null {
    const packet = this.decode(frame) as P | null
    if (packet === null) this.decodeFailure(type)
    else if (!packet.messageId) this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
    else return packet
    return null
  }

  private onSubscribe(frame: Buffer): boolean {
    const packet = this.decodeWithId<ISubscribePacket>(frame, PacketType.Subscribe)
    if (packet === null) return false
    const session = this.session
    const checks = session.checks!
    const state = session.state
    const subscriptions = packet.subscriptions
    const book = session.book
    if (book.pendingCount >= MAX_PENDING_SUBSCRIBES) return this.violation('quota_exceeded', ReasonCode.QuotaExceeded, PacketType.Subscribe)
    const full = state.subscriptions.size + subscriptions.length > MAX_TRACKED_SUBSCRIPTIONS
    // Per filter: Moat's refusal code, or -1 where the filter goes to the broker.
    let codes: number[] | null = null
    // A check may lower a filter's QoS (acl maxQos): the broker must then get the lowered one.
    let downgraded = false
    const allowed: ISubscription[] = []
    for (let i = 0; i < subscriptions.length; i++) {
      const subscription = subscriptions[i]!
      const asked = subscription.qos
      const verdict = full ? QUOTA_REFUSAL : checks.runSubscribe(subscription, state)
      if (verdict.action === Action.Forward) {
        if (subscription.qos !== asked) downgraded = true
        allowed.push(subscription)
        continue
      }
      if (verdict.action === Action.Disconnect) return this.refusedBy(verdict, PacketType.Subscribe)
      // Refused filter: SUBACK failure code 0x80 (3.x) or the reason code (5.0) in its slot.
      codes ??= new Array<number>(subscriptions.length).fill(-1)
      codes[i] = state.version === 5 ? verdict.reason : 0x80
      session.audit.rejected(verdict.why, verdict.reason, 'subscribe', subscription.topic, full ? null : checks)
    }
    const packetId = packet.messageId!
    if (codes === null && !downgraded) {
      book.expect(packetId, allowed.map(topicOf), allowed.map(qosOf), null)
      session.toBroker.addFrame(frame) // all allowed as asked: the original bytes
      return true
    }
    if (allowed.length === 0 && codes !== null) {
      // All refused: Moat answers alone, the broker sees nothing.
      session.toClient.write(suback(packetId, codes, state.version === 5 ? EMPTY_PROPERTIES : null))
      return true
    }
    // Mixed or downgraded: a rewritten SUBSCRIBE with only the allowed filters, at the QoS allowed
    // (a deliberate rewrite); the broker's SUBACK is merged back into the
    // client's order (SubscriptionBook).
    book.expect(packetId, allowed.map(topicOf), allowed.map(qosOf), codes)
    packet.subscriptions = allowed
    session.toBroker.write(generate(packet, { protocolVersion: state.version }))
    return true
  }

  private onUnsubscribe(frame: Buffer): boolean {
    const packet = this.decodeWithId<IUnsubscribePacket>(frame, PacketType.Unsubscribe)
    if (packet === null) return false
    const session = this.session
    const checks = session.checks!
    for (const filter of packet.unsubscriptions) {
      const verdict = checks.runUnsubscribe(filter, session.state)
      if (verdict.action !== Action.Forward) return this.refusedBy(verdict, PacketType.Unsubscribe)
    }
    for (const filter of packet.unsubscriptions) session.state.subscriptions.delete(filter)
    session.toBroker.addFrame(frame)
    return true
  }

  private onDisconnect(frame: Buffer, bodyOffset: number): boolean {
    // 3.1.1 DISCONNECT has no body; 5.0 may carry a reason code and properties.
    if (this.session.state.version < 5 ? frame.length !== bodyOffset : this.decode(frame) === null) {
      return this.decodeFailure(PacketType.Disconnect)
    }
    return this.session.ends.disconnected(frame)
  }

  private onAuth(frame: Buffer): boolean {
    if (this.decode(frame) === null) return this.decodeFailure(PacketType.Auth)
    this.session.toBroker.addFrame(frame)
    return true
  }

  private decodeFailure(type: number): boolean {
    const session = this.session
    const decoder = session.decoder
    if (decoder?.lastError === TOO_MANY_USER_PROPERTIES) return this.violation('too_many_user_properties', ReasonCode.QuotaExceeded, type)
    session.ctx.stats.decodeErrors[type]! += 1
    session.audit.log.debug({ event: 'decode_error', packetType: packetTypeNames[type], error: decoder?.lastError }, 'packet failed to decode')
    // A string property the broker refuses: it closes without a DISCONNECT, whatever the packet.
    const quiet = decoder?.lastFault === DecodeFault.BadString && decoder.lastField !== 'topic_filter'
    return this.violation('malformed_packet', ReasonCode.MalformedPacket, type, quiet)
  }

  /**
   * After a reload: subscriptions the new policy forbids are unsubscribed at the broker on the
   * client's behalf, and their deliveries stop at once (held back until the broker's UNSUBACK).
   * A rule with `onDeny: disconnect` closes the client instead (5.0: DISCONNECT 0x87).
   */
  reviewSubscriptions(): void {
    const session = this.session
    const state = session.state
    if (state.subscriptions.size === 0) return
    const checks = session.checks!
    const revoked: string[] = []
    for (const filter of state.subscriptions.keys()) {
      const verdict = checks.reviewSubscription(filter, state)
      if (verdict.action === Action.Forward) continue
      if (verdict.action === Action.Disconnect) {
        this.refusedBy(verdict, PacketType.Subscribe)
        return
      }
      revoked.push(filter)
    }
    if (revoked.length === 0) return
    session.ctx.stats.aclRevocations += revoked.length
    session.audit.revoked(revoked, checks)
    session.toBroker.write(session.book.revoke(revoked, state))
  }
}
