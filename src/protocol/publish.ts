/**
 * The PUBLISH fast path: reads only what checks need from the frame (flags, topic
 * bounds, packet id, and on 5.0 the topic alias), into a PublishView reused for every packet of a
 * direction. The payload is never touched; the topic becomes a string only when asked for.
 */
import { readVarint, VARINT_INCOMPLETE, VARINT_MALFORMED, varintSize } from './framer.js'
import { MAX_USER_PROPERTIES } from './properties.js'
import { ReasonCode } from './reason.js'
import { TopicCache } from './topic-cache.js'
import { checkTopicName, checkUtf8 } from './validate.js'

const EMPTY = Buffer.alloc(0)

export class PublishView {
  /** The buffer the packet is in, and where in it: `frame[frameStart, frameEnd)`. Offsets below are into `frame`. */
  frame: Buffer = EMPTY
  frameStart = 0
  frameEnd = 0
  qos = 0
  retain = false
  dup = false
  topicStart = 0
  topicEnd = 0
  packetId = 0
  /** 5.0 Topic Alias property, 0 when absent. */
  topicAlias = 0
  /**
   * After a fault: the string field the broker would refuse (utf8.ts), else null. The broker answers
   * a bad topic name differently from a bad string property (a 5.0 DISCONNECT or a bare close).
   */
  badString: 'topic' | 'property' | null = null
  /** User Properties a PUBLISH may carry (the cve-2021-41039 virtual patch; Infinity when off). */
  maxUserProperties = MAX_USER_PROPERTIES
  payloadStart = 0
  private topicString: string | null = null
  /** Made on the first topic asked for: a session that never needs one (idle, no inspection) pays nothing. */
  private topics: TopicCache | null = null

  get payloadLength(): number {
    return this.frameEnd - this.payloadStart
  }

  /** Size of the whole packet (fixed header included). */
  get frameLength(): number {
    return this.frameEnd - this.frameStart
  }

  get topicLength(): number {
    return this.topicEnd - this.topicStart
  }

  /** The topic name as a string (decoded on first use per packet). Empty on an alias-only 5.0 publish. */
  get topic(): string {
    if (this.topicString === null) this.topicString = (this.topics ??= new TopicCache()).decode(this.frame, this.topicStart, this.topicEnd)
    return this.topicString
  }

  /** Set by a session that resolved a topic alias to its topic. */
  set topic(value: string) {
    this.topicString = value
  }

  /** Points the view at a new frame, `frame[start, end)`; forgets the previous packet's topic string. */
  reset(frame: Buffer, start: number, end: number): void {
    this.frame = frame
    this.frameStart = start
    this.frameEnd = end
    this.topicString = null
  }

  /** Drops the reference to the frame, so the view never keeps a packet alive. */
  clear(): void {
    this.frame = EMPTY
    this.topicString = null
  }
}

// Property identifiers that may appear in PUBLISH (5.0 spec 3.3.2.3).
const PAYLOAD_FORMAT = 0x01
const MESSAGE_EXPIRY = 0x02
const CONTENT_TYPE = 0x03
const RESPONSE_TOPIC = 0x08
const CORRELATION_DATA = 0x09
const SUBSCRIPTION_ID = 0x0b
const TOPIC_ALIAS = 0x23
const USER_PROPERTY = 0x26

/**
 * Reads the PUBLISH frame `frame[start, end)` (the whole buffer by default) into `view`; its body
 * starts at `start + bodyOffset`. Returns 0, or the 5.0 reason code of the fault (Malformed Packet
 * for a string the broker refuses, with `view.badString` saying which).
 * `fromClient`: a client MUST NOT send a Subscription Identifier [MQTT-3.3.4-6].
 */
export function readPublish(
  frame: Buffer, flags: number, bodyOffset: number, version: number, fromClient: boolean, view: PublishView,
  start = 0, end = frame.length,
): number {
  const qos = (flags >> 1) & 0x03
  // A PUBLISH packet MUST NOT have both QoS bits set to 1 [MQTT-3.3.1-4].
  if (qos === 3) return ReasonCode.MalformedPacket
  // The DUP flag MUST be set to 0 for all QoS 0 messages [MQTT-3.3.1-2].
  if (qos === 0 && (flags & 0x08) !== 0) return ReasonCode.MalformedPacket
  view.reset(frame, start, end)
  view.qos = qos
  view.retain = (flags & 0x01) !== 0
  view.dup = (flags & 0x08) !== 0
  view.topicAlias = 0
  view.packetId = 0
  view.badString = null

  let pos = start + bodyOffset
  if (pos + 2 > end) return ReasonCode.MalformedPacket
  const topicLength = frame.readUInt16BE(pos)
  pos += 2
  if (pos + topicLength > end) return ReasonCode.MalformedPacket
  view.topicStart = pos
  view.topicEnd = pos + topicLength
  const topicFault = checkTopicName(frame, pos, pos + topicLength)
  if (topicFault !== 0) {
    if (topicFault === ReasonCode.MalformedPacket) view.badString = 'topic'
    return topicFault
  }
  pos += topicLength

  if (qos > 0) {
    if (pos + 2 > end) return ReasonCode.MalformedPacket
    const packetId = frame.readUInt16BE(pos)
    // A PUBLISH with QoS > 0 MUST contain a non-zero Packet Identifier [MQTT-2.2.1-3]: a protocol
    // error, as the broker calls it too.
    if (packetId === 0) return ReasonCode.ProtocolError
    view.packetId = packetId
    pos += 2
  }

  if (version === 5) {
    const propertiesLength = readVarint(frame, pos, end)
    if (propertiesLength === VARINT_INCOMPLETE || propertiesLength === VARINT_MALFORMED) return ReasonCode.MalformedPacket
    pos += varintSize(propertiesLength)
    const propertiesEnd = pos + propertiesLength
    if (propertiesEnd > end) return ReasonCode.MalformedPacket
    if (propertiesLength > 0) {
      const fault = readPublishProperties(frame, pos, propertiesEnd, fromClient, view)
      if (fault !== 0) return fault
    }
    pos = propertiesEnd
    // Without a topic name the alias must say which topic [MQTT-3.3.2-8]: a protocol error otherwise.
    if (topicLength === 0 && view.topicAlias === 0) return ReasonCode.ProtocolError
  } else if (topicLength === 0) {
    // All Topic Names MUST be at least one character long [MQTT-4.7.3-1].
    return ReasonCode.TopicNameInvalid
  }
  view.payloadStart = pos
  return 0
}

function readPublishProperties(frame: Buffer, pos: number, end: number, fromClient: boolean, view: PublishView): number {
  let seen = 0
  let userProperties = 0
  while (pos < end) {
    const id = frame[pos++]!
    // Each of these properties may appear at most once; a repeat is a protocol error (spec 3.3.2.3).
    let bit = 0
    switch (id) {
      case PAYLOAD_FORMAT:
        // Any value passes: the spec defines 0 and 1 without naming a fault for others, and the broker relays them.
        if (pos + 1 > end) return ReasonCode.MalformedPacket
        pos += 1
        bit = 1
        break
      case MESSAGE_EXPIRY:
        if (pos + 4 > end) return ReasonCode.MalformedPacket
        pos += 4
        bit = 2
        break
      case TOPIC_ALIAS: {
        if (pos + 2 > end) return ReasonCode.MalformedPacket
        const alias = frame.readUInt16BE(pos)
        // A Topic Alias of 0 is not permitted [MQTT-3.3.2-8].
        if (alias === 0) return ReasonCode.TopicAliasInvalid
        view.topicAlias = alias
        pos += 2
        bit = 4
        break
      }
      case RESPONSE_TOPIC: {
        const stringEnd = stringFieldEnd(frame, pos, end)
        if (stringEnd < 0) return ReasonCode.MalformedPacket
        // The Response Topic MUST be a UTF-8 string and a Topic Name: no wildcards [MQTT-3.3.2-14].
        const fault = checkTopicName(frame, pos + 2, stringEnd)
        if (fault === ReasonCode.MalformedPacket) return badProperty(view)
        if (fault !== 0 || stringEnd === pos + 2) return fault !== 0 ? fault : ReasonCode.TopicNameInvalid
        pos = stringEnd
        bit = 8
        break
      }
      case CORRELATION_DATA: {
        const dataEnd = stringFieldEnd(frame, pos, end)
        if (dataEnd < 0) return ReasonCode.MalformedPacket
        pos = dataEnd
        bit = 16
        break
      }
      case CONTENT_TYPE: {
        const stringEnd = stringFieldEnd(frame, pos, end)
        if (stringEnd < 0) return ReasonCode.MalformedPacket
        if (checkUtf8(frame, pos + 2, stringEnd) !== 0) return badProperty(view)
        pos = stringEnd
        bit = 32
        break
      }
      case USER_PROPERTY: {
        // Not a protocol fault: a cap (CVE-2021-41039, properties.ts), answered with Quota Exceeded.
        if (++userProperties > view.maxUserProperties) return ReasonCode.QuotaExceeded
        const nameEnd = stringFieldEnd(frame, pos, end)
        if (nameEnd < 0) return ReasonCode.MalformedPacket
        const valueEnd = stringFieldEnd(frame, nameEnd, end)
        if (valueEnd < 0) return ReasonCode.MalformedPacket
        if (checkUtf8(frame, pos + 2, nameEnd) !== 0 || checkUtf8(frame, nameEnd + 2, valueEnd) !== 0) return badProperty(view)
        pos = valueEnd
        break
      }
      case SUBSCRIPTION_ID: {
        if (fromClient) return ReasonCode.ProtocolError
        const value = readVarint(frame, pos, end)
        if (value < 0) return ReasonCode.MalformedPacket
        pos += varintSize(value)
        break
      }
      default:
        return ReasonCode.MalformedPacket
    }
    if ((seen & bit) !== 0) return ReasonCode.ProtocolError
    seen |= bit
  }
  return pos === end ? 0 : ReasonCode.MalformedPacket
}

function badProperty(view: PublishView): number {
  view.badString = 'property'
  return ReasonCode.MalformedPacket
}

/** End of a two-byte-length-prefixed field starting at `pos`, or -1 when it overruns `end`. */
function stringFieldEnd(frame: Buffer, pos: number, end: number): number {
  if (pos + 2 > end) return -1
  const fieldEnd = pos + 2 + frame.readUInt16BE(pos)
  return fieldEnd > end ? -1 : fieldEnd
}
