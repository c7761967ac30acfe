/**
 * Moat's decoder of the rare, complex packets: CONNECT (3.1, 3.1.1, 5.0), CONNACK, SUBSCRIBE,
 * UNSUBSCRIBE, the acks PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT, AUTH (and the empty PINGREQ /
 * PINGRESP). PUBLISH has its own fast path (publish.ts).
 *
 * - It is fed exactly one complete frame per call (fixed header included) and reads it whole:
 *   every field is checked, and a packet must end exactly at its Remaining Length.
 * - It produces mqtt-packet's packet shapes (IConnectPacket, ISubscribePacket, ...), whose
 *   `generate` re-encodes them where Moat rewrites a packet.
 * - Every short form 5.0 allows is read: DISCONNECT and AUTH with Remaining Length 0 (reason 0x00)
 *   or 1 (reason code only), acks with Remaining Length 2 (success) or 3 (reason code only).
 * - Its faults come back as values (lastError, lastFault, lastField), never as exceptions.
 * - Allocation is bounded by the frame: strings and views of it, at most one subscription per three
 *   bytes, at most MAX_USER_PROPERTIES user properties per block.
 */
import type {
  IAuthPacket, IConnackPacket, IConnectPacket, IDisconnectPacket, IPubackPacket, ISubscribePacket,
  ISubscription, IUnsubscribePacket, Packet,
} from 'mqtt-packet'
import { isAckReasonCode } from './acks.js'
import { readVarint, varintSize } from './framer.js'
import { FLAGS_ANY, PacketType, requiredFlags } from './packet-type.js'
import { MAX_USER_PROPERTIES, readProperties, type Properties } from './properties.js'
import { DecodeFailure, DecodeFault, fail, Reader, type DecodeField } from './reader.js'

export type { Packet }
export { DecodeFault, type DecodeField } from './reader.js'

const ACK_NAMES = ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const

const DISCONNECT_CODES = new Uint8Array(256)
for (const code of [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95,
  0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2]) DISCONNECT_CODES[code] = 1
const AUTH_CODES = new Uint8Array(256)
for (const code of [0x00, 0x18, 0x19]) AUTH_CODES[code] = 1
const CONNACK_CODES = new Uint8Array(256)
for (const code of [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97,
  0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f]) CONNACK_CODES[code] = 1

const USERNAME_FLAG = 0x80
const PASSWORD_FLAG = 0x40
const WILL_RETAIN_FLAG = 0x20
const WILL_FLAG = 0x04
const CLEAN_FLAG = 0x02
const RESERVED_FLAG = 0x01

export class PacketDecoder {
  private readonly protocolVersion: number | undefined
  private error: DecodeFailure | null = null

  /** `protocolVersion`: the version from the client's CONNECT; omit to decode a CONNECT. */
  constructor(protocolVersion?: number) {
    this.protocolVersion = protocolVersion
  }

  /**
   * Decodes one complete frame. Returns the packet, or null with `lastError` (and `lastFault`,
   * `lastField`) saying why. The decoder keeps nothing of the frame or the packet past the call.
   * `maxUserProperties`: the cap per property block (the cve-2021-41039 virtual patch; Infinity when off).
   */
  decode(frame: Buffer, maxUserProperties = MAX_USER_PROPERTIES): Packet | null {
    this.error = null
    try {
      return this.read(frame, maxUserProperties)
    } catch (err) {
      // A DecodeFailure is a fault of the packet; anything else is a bug here, still only this client's problem.
      this.error = err instanceof DecodeFailure ? err : new DecodeFailure(DecodeFault.Malformed, 'header', `decoder failure: ${String(err)}`)
      return null
    }
  }

  /** Why the last decode failed ('' after a success). TOO_MANY_USER_PROPERTIES for that cap. */
  get lastError(): string {
    return this.error?.message ?? ''
  }

  /** The kind of the last fault, null after a success. */
  get lastFault(): DecodeFault | null {
    return this.error?.fault ?? null
  }

  /** The field of the last fault, null after a success. */
  get lastField(): DecodeField | null {
    return this.error?.field ?? null
  }

  private read(frame: Buffer, maxUserProperties: number): Packet {
    if (frame.length < 2) fail(DecodeFault.Malformed, 'header', 'incomplete packet')
    const type = frame[0]! >> 4
    const flags = frame[0]! & 0x0f
    const remaining = readVarint(frame, 1, frame.length)
    if (remaining < 0) fail(DecodeFault.Malformed, 'header', 'malformed remaining length')
    const body = 1 + varintSize(remaining)
    if (body + remaining !== frame.length) fail(DecodeFault.Malformed, 'header', 'the frame is not as long as its remaining length')
    const required = requiredFlags[type]!
    // Reserved fixed-header flags MUST be as listed [MQTT-2.2.2-1], else the packet is malformed
    // [MQTT-2.2.2-2]. MQTT 3.1 had no such rule (its PUBREL, SUBSCRIBE, UNSUBSCRIBE may carry DUP).
    if (required !== FLAGS_ANY && flags !== required && (this.protocolVersion !== 3 || type === PacketType.Connect)) {
      fail(DecodeFault.Malformed, 'header', `reserved flags ${flags} in packet type ${type}`)
    }
    const r = new Reader(frame, body, frame.length)
    r.maxUserProperties = maxUserProperties
    if (this.protocolVersion === undefined && type !== PacketType.Connect) fail(DecodeFault.ProtocolError, 'header', `packet type ${type} where a CONNECT is expected`)
    const v5 = this.protocolVersion === 5
    let packet: Packet
    switch (type) {
      case PacketType.Connect: packet = readConnect(r); break
      case PacketType.Connack: packet = readConnack(r, v5); break
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubrel:
      case PacketType.Pubcomp: packet = readAck(r, type, v5); break
      case PacketType.Subscribe: packet = readSubscribe(r, v5); break
      case PacketType.Unsubscribe: packet = readUnsubscribe(r, v5); break
      case PacketType.Pingreq: packet = { cmd: 'pingreq' }; break
      case PacketType.Pingresp: packet = { cmd: 'pingresp' }; break
      case PacketType.Disconnect: packet = readDisconnect(r, v5); break
      case PacketType.Auth:
        if (!v5) fail(DecodeFault.ProtocolError, 'header', 'AUTH before MQTT 5.0')
        packet = readAuth(r)
        break
      default:
        return fail(DecodeFault.Malformed, 'header', `packet type ${type} is not decoded here`)
    }
    if (r.left !== 0) fail(DecodeFault.Malformed, 'trailing', 'bytes after the last field of the packet')
    return packet
  }
}

function readConnect(r: Reader): IConnectPacket {
  const nameLength = r.u16('protocol')
  if (nameLength !== 4 && nameLength !== 6) fail(DecodeFault.ProtocolError, 'protocol', 'unknown protocol name')
  const name = r.buf.toString('latin1', r.pos, r.pos + nameLength)
  r.pos += nameLength
  const levelByte = r.byte('protocol')
  const level = levelByte & 0x7f
  if (!(name === 'MQTT' && (level === 4 || level === 5)) && !(name === 'MQIsdp' && level === 3)) {
    fail(DecodeFault.ProtocolError, 'protocol', `protocol ${JSON.stringify(name)} level ${level} is not supported`)
  }
  const flags = r.byte('connect_flags')
  // The reserved flag MUST be 0 [MQTT-3.1.2-3].
  if ((flags & RESERVED_FLAG) !== 0) fail(DecodeFault.Malformed, 'connect_flags', 'the reserved connect flag is set')
  const hasWill = (flags & WILL_FLAG) !== 0
  const willQos = (flags >> 3) & 0x03
  const willRetain = (flags & WILL_RETAIN_FLAG) !== 0
  // Will QoS MUST NOT be 3 [MQTT-3.1.2-12]; without a will, Will QoS and Will Retain MUST be 0 [MQTT-3.1.2-11] [MQTT-3.1.2-13].
  if (willQos === 3) fail(DecodeFault.Malformed, 'connect_flags', 'will QoS 3')
  if (!hasWill && (willQos !== 0 || willRetain)) fail(DecodeFault.Malformed, 'connect_flags', 'will QoS or retain without a will')
  const hasUsername = (flags & USERNAME_FLAG) !== 0
  const hasPassword = (flags & PASSWORD_FLAG) !== 0
  // Before 5.0 a password needs a user name [MQTT-3.1.2-22]; 5.0 allows it alone (3.1.2.9).
  if (level < 5 && hasPassword && !hasUsername) fail(DecodeFault.ProtocolError, 'connect_flags', 'a password without a user name')
  const keepalive = r.u16('keepalive')
  const packet: IConnectPacket = {
    cmd: 'connect',
    protocolId: name as 'MQTT' | 'MQIsdp',
    protocolVersion: level as 3 | 4 | 5,
    clean: (flags & CLEAN_FLAG) !== 0,
    keepalive,
    clientId: '',
  }
  if ((levelByte & 0x80) !== 0) (packet as { bridgeMode?: boolean }).bridgeMode = true
  if (level === 5) {
    const properties = readProperties(r, 'connect', 'properties')
    if (properties !== undefined) packet.properties = properties
  }
  packet.clientId = r.string('client_id')
  if (hasWill) {
    let willProperties: Properties | undefined
    if (level === 5) willProperties = readProperties(r, 'will', 'will_properties')
    const topic = r.string('will_topic')
    const payload = r.binary('will_payload')
    packet.will = { topic, payload, qos: willQos as 0 | 1 | 2, retain: willRetain }
    if (willProperties !== undefined) packet.will.properties = willProperties
  }
  if (hasUsername) packet.username = r.string('username')
  if (hasPassword) packet.password = r.binary('password')
  return packet
}

function readConnack(r: Reader, v5: boolean): IConnackPacket {
  const ackFlags = r.byte('ack_flags')
  // Bits 7-1 of the Connect Acknowledge Flags are reserved and MUST be 0 [MQTT-3.2.2-1].
  if ((ackFlags & 0xfe) !== 0) fail(DecodeFault.Malformed, 'ack_flags', 'reserved CONNACK flags set')
  const code = r.byte('reason_code')
  const packet: IConnackPacket = { cmd: 'connack', sessionPresent: (ackFlags & 1) !== 0 }
  if (!v5) {
    if (code > 5) fail(DecodeFault.Malformed, 'reason_code', `CONNACK return code ${code}`)
    packet.returnCode = code
    return packet
  }
  if (CONNACK_CODES[code] !== 1) fail(DecodeFault.ProtocolError, 'reason_code', `CONNACK reason code 0x${code.toString(16)}`)
  packet.reasonCode = code
  const properties = readProperties(r, 'connack', 'properties')
  if (properties !== undefined) packet.properties = properties
  return packet
}

/** A packet id, which MUST be non-zero in every packet that has one [MQTT-2.2.1-3]. */
function packetId(r: Reader): number {
  const id = r.u16('packet_id')
  if (id === 0) fail(DecodeFault.Malformed, 'packet_id', 'packet identifier 0')
  return id
}

function readAck(r: Reader, type: number, v5: boolean): Packet {
  const messageId = packetId(r)
  const packet: IPubackPacket = { cmd: ACK_NAMES[type - PacketType.Puback]!, messageId } as IPubackPacket
  if (!v5) return packet
  // Remaining Length 2: Success and no properties (5.0 3.4.2.1); 3: a reason code and no properties (3.4.2.2.1).
  const code = r.left === 0 ? 0 : r.byte('reason_code')
  if (!isAckReasonCode(type, code)) fail(DecodeFault.ProtocolError, 'reason_code', `${packet.cmd} reason code 0x${code.toString(16)}`)
  packet.reasonCode = code
  if (r.left > 0) {
    const properties = readProperties(r, 'ack', 'properties')
    if (properties !== undefined) packet.properties = properties
  }
  return packet
}

function readSubscribe(r: Reader, v5: boolean): ISubscribePacket {
  const messageId = packetId(r)
  const packet: ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions: [] }
  if (v5) {
    const properties = readProperties(r, 'subscribe', 'properties')
    if (properties !== undefined) packet.properties = properties
  }
  // At least one topic filter [MQTT-3.8.3-3].
  if (r.left === 0) fail(DecodeFault.Malformed, 'topic_filter', 'subscribe without a topic filter')
  const subscriptions = packet.subscriptions
  while (r.left > 0) {
    const topic = r.string('topic_filter')
    const options = r.byte('subscription_options')
    const qos = options & 0x03
    if (qos === 3) fail(DecodeFault.Malformed, 'subscription_options', 'subscription QoS 3')
    if (!v5) {
      // Bits 7-2 of the requested QoS byte are reserved and MUST be 0 [MQTT-3-8.3-4] (3.1.1).
      if ((options & 0xfc) !== 0) fail(DecodeFault.Malformed, 'subscription_options', 'reserved subscription option bits set')
      subscriptions.push({ topic, qos } as ISubscription)
      continue
    }
    // Bits 7-6 are reserved and MUST be 0 [MQTT-3.8.3-5]; Retain Handling 3 is a Protocol Error (3.8.3.1).
    if ((options & 0xc0) !== 0) fail(DecodeFault.Malformed, 'subscription_options', 'reserved subscription option bits set')
    const rh = (options >> 4) & 0x03
    if (rh === 3) fail(DecodeFault.ProtocolError, 'subscription_options', 'retain handling 3')
    subscriptions.push({ topic, qos, nl: (options & 0x04) !== 0, rap: (options & 0x08) !== 0, rh } as ISubscription)
  }
  return packet
}

function readUnsubscribe(r: Reader, v5: boolean): IUnsubscribePacket {
  const messageId = packetId(r)
  const packet: IUnsubscribePacket = { cmd: 'unsubscribe', messageId, unsubscriptions: [] }
  if (v5) {
    const properties = readProperties(r, 'unsubscribe', 'properties')
    if (properties !== undefined) packet.properties = properties
  }
  // At least one topic filter [MQTT-3.10.3-2].
  if (r.left === 0) fail(DecodeFault.Malformed, 'topic_filter', 'unsubscribe without a topic filter')
  while (r.left > 0) packet.unsubscriptions.push(r.string('topic_filter'))
  return packet
}

/** The reason code and properties of a 5.0 DISCONNECT or AUTH; Remaining Length 0 means 0x00 and none, 1 a code alone (3.14.2.1, 3.15.2.1). */
function readReasonAndProperties(r: Reader, packet: { cmd: string; reasonCode?: number; properties?: Properties }, codes: Uint8Array, block: 'disconnect' | 'auth'): void {
  const code = r.left === 0 ? 0 : r.byte('reason_code')
  if (codes[code] !== 1) fail(DecodeFault.ProtocolError, 'reason_code', `${packet.cmd} reason code 0x${code.toString(16)}`)
  packet.reasonCode = code
  if (r.left > 0) {
    const properties = readProperties(r, block, 'properties')
    if (properties !== undefined) packet.properties = properties
  }
}

function readDisconnect(r: Reader, v5: boolean): IDisconnectPacket {
  const packet: IDisconnectPacket = { cmd: 'disconnect' }
  // A 3.x DISCONNECT has no body: anything is trailing bytes (read's final check).
  if (v5) readReasonAndProperties(r, packet as { cmd: string }, DISCONNECT_CODES, 'disconnect')
  return packet
}

function readAuth(r: Reader): IAuthPacket {
  const packet = { cmd: 'auth', reasonCode: 0 } as IAuthPacket
  readReasonAndProperties(r, packet as { cmd: string }, AUTH_CODES, 'auth')
  return packet
}

/** Protocol name and level of a CONNECT, read before decoding so each fault gets its own answer. */
export const ConnectProtocol = {
  Ok: 0,
  BadName: 1,
  UnsupportedLevel: 2,
  Malformed: 3,
} as const

/**
 * Checks the protocol name and level of a CONNECT frame: "MQIsdp" with level 3 (3.1), "MQTT" with
 * 4 (3.1.1) or 5 (5.0). The top bit of the level is the bridge flag some brokers send; it is kept.
 * Returns the level (3, 4 or 5) or a negative ConnectProtocol fault.
 */
export function readConnectLevel(frame: Buffer, bodyOffset: number): number {
  if (bodyOffset + 2 > frame.length) return -ConnectProtocol.Malformed
  const nameLength = frame.readUInt16BE(bodyOffset)
  const levelAt = bodyOffset + 2 + nameLength
  if (levelAt >= frame.length) return -ConnectProtocol.Malformed
  const name = frame.toString('latin1', bodyOffset + 2, levelAt)
  const level = frame[levelAt]! & 0x7f
  if (name === 'MQTT') return level === 4 || level === 5 ? level : -ConnectProtocol.UnsupportedLevel
  if (name === 'MQIsdp') return level === 3 ? 3 : -ConnectProtocol.UnsupportedLevel
  // If the protocol name is incorrect the server MAY disconnect the client [MQTT-3.1.2-1].
  return -ConnectProtocol.BadName
}

/**
 * The decoder of every CONNECT: one for the process (decoding is synchronous and keeps nothing
 * between calls; a decoded packet holds views of its frame only).
 */
export const connectDecoder = new PacketDecoder()
