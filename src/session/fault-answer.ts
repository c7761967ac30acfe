/**
 * What a client hears when Moat closes it. A protocol fault is one the broker would have caught
 * itself had Moat forwarded the packet, so Moat answers it as Mosquitto 2.0 does: a 5.0 DISCONNECT
 * only for a broken PUBLISH, SUBSCRIBE, UNSUBSCRIBE or a packet of the reserved type 0, with one of
 * the broker's two codes (0x81 malformed, 0x82 protocol error; 0x94 for a topic alias), and a bare
 * close for any other broken packet. A refusal by policy (ACL, limits, bans) is Moat's own
 * decision and says why in a 5.0 DISCONNECT. 3.1 and 3.1.1 have no DISCONNECT from the server.
 */
import type { DenyReason } from '../stats/reasons.js'
import type { SessionState } from '../client/session-state.js'
import { PacketType } from '../protocol/packet-type.js'
import { ReasonCode } from '../protocol/reason.js'
import { connackRefusal, disconnectV5 } from '../protocol/responses.js'

const PROTOCOL_FAULTS: ReadonlySet<DenyReason> = new Set<DenyReason>([
  'malformed_packet', 'protocol_error', 'reserved_flags', 'forbidden_packet_type', 'duplicate_connect',
  'invalid_topic', 'invalid_topic_filter', 'topic_alias_invalid',
])

/** The broker's code for a protocol fault `reason` in a packet of `type`. */
function brokerCode(reason: number, type: number): number {
  if (reason === ReasonCode.TopicAliasInvalid) return reason
  if (reason === ReasonCode.MalformedPacket || reason === ReasonCode.ProtocolError) return reason
  // A bad topic name is a protocol error to Mosquitto, a bad topic filter a malformed packet.
  return type === PacketType.Publish ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket
}

/**
 * The packet that goes to the client before the close, or null for a bare close. `type` is the
 * packet type at fault, or -1 when no packet could be framed. `connected`: the client has had its
 * CONNACK (a DISCONNECT may not come before it [MQTT-3.14.0-1]).
 */
export function faultAnswer(why: DenyReason, reason: number, type: number, version: number, connected: boolean): Buffer | null {
  if (version !== 5 || !connected) return null
  if (!PROTOCOL_FAULTS.has(why)) return disconnectV5(reason)
  if (type !== PacketType.Publish && type !== PacketType.Subscribe && type !== PacketType.Unsubscribe && type !== PacketType.Reserved) return null
  return disconnectV5(type === PacketType.Reserved ? ReasonCode.ProtocolError : brokerCode(reason, type))
}

/**
 * The answer to a refused CONNECT: a CONNECT the broker would find malformed or in breach of the
 * protocol is closed without a CONNACK, as Mosquitto 2.0 closes it; any other refusal (policy,
 * credentials, limits) gets the refusing CONNACK of the client's version.
 */
export function connectRefusal(version: number, reason: number): Buffer | null {
  if (reason === ReasonCode.MalformedPacket || reason === ReasonCode.ProtocolError) return null
  return connackRefusal(version, reason)
}

/**
 * How to tell a client the service is gone: before a successful CONNACK, a refusing CONNACK
 * (3.1.1 code 3; 5.0 0x88); after it, on 5.0, DISCONNECT with `reason`; 3.1.1 just closes.
 */
export function unavailableAnswer(s: SessionState, connackSeen: boolean, reason: number): Buffer | null {
  if (!connackSeen) return s.version === 0 ? null : connackRefusal(s.version, ReasonCode.ServerUnavailable)
  return s.version === 5 && s.connected ? disconnectV5(reason) : null
}

/** A packet over the size cap: 5.0 DISCONNECT 0x95, or before the CONNACK, CONNACK 0x95 (none before the CONNECT was read). */
export function tooLargeAnswer(s: SessionState, beforeConnect: boolean): Buffer | null {
  if (s.version !== 5) return null
  if (s.connected) return disconnectV5(ReasonCode.PacketTooLarge)
  return beforeConnect ? null : connackRefusal(5, ReasonCode.PacketTooLarge)
}

/**
 * A ban made while the session is open: before the CONNACK, CONNACK 0x8A; after it, 5.0
 * DISCONNECT 0x98 Administrative action (0x8A Banned is a CONNACK-only code), 3.1.1 closed.
 */
export function bannedAnswer(s: SessionState, beforeConnect: boolean, connackSeen: boolean): Buffer | null {
  if (!connackSeen) return beforeConnect ? null : connackRefusal(s.version, ReasonCode.Banned)
  return s.version === 5 && s.connected ? disconnectV5(ReasonCode.AdministrativeAction) : null
}

/** The proxy shuts down: a CONNECT being judged gets CONNACK 0x8B, an open 5.0 client DISCONNECT 0x8B. */
export function shutdownAnswer(s: SessionState, connecting: boolean): Buffer | null {
  if (connecting) return connackRefusal(s.version, ReasonCode.ServerShuttingDown)
  return s.version === 5 && s.connected ? disconnectV5(ReasonCode.ServerShuttingDown) : null
}

/**
 * An operator kicked the client: after the CONNACK, 5.0 DISCONNECT 0x98 Administrative action and
 * 3.1.1 a bare close; before it, the refusing CONNACK Server unavailable (0x98 is no CONNACK code),
 * which tells the client to try again later: a kick is not a ban.
 */
export function kickedAnswer(s: SessionState, connackSeen: boolean): Buffer | null {
  return unavailableAnswer(s, connackSeen, ReasonCode.AdministrativeAction)
}
