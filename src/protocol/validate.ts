/**
 * Spec rules on strings, topic names and topic filters, each with the normative statement it
 * enforces. Pure functions over bytes or strings; they know nothing of policy.
 * Each returns 0 when the input is valid, otherwise the MQTT 5.0 reason code that describes
 * the fault (the session maps it to the client's protocol version).
 */
import { ReasonCode } from './reason.js'
import { isRefusedString } from './utf8.js'

const PLUS = 0x2b
const HASH = 0x23
const SLASH = 0x2f
const ZERO = 0x30
const DEL = 0x7f

/**
 * A UTF-8 Encoded String field, held to the broker's rule (utf8.ts): well-formed UTF-8
 * [MQTT-1.5.4-1] without U+0000 [MQTT-1.5.4-2], control characters or non-characters. ASCII is
 * checked inline; only a string with a byte above 0x7F is handed to the full check.
 */
export function checkUtf8(buf: Buffer, start: number, end: number): number {
  let ascii = true
  for (let i = start; i < end; i++) {
    const b = buf[i]!
    if (b < 0x20 || b === DEL) return ReasonCode.MalformedPacket
    if (b > DEL) ascii = false
  }
  if (!ascii && isRefusedString(buf, start, end)) return ReasonCode.MalformedPacket
  return 0
}

/**
 * A Topic Name (PUBLISH, will topic): a string as checkUtf8 wants it, at least one character
 * [MQTT-4.7.3-1] (an empty name is legal only on 5.0 with a topic alias; the caller decides that),
 * no wildcard characters [MQTT-3.3.2-2].
 */
export function checkTopicName(buf: Buffer, start: number, end: number): number {
  let ascii = true
  for (let i = start; i < end; i++) {
    const b = buf[i]!
    // One comparison for the common bytes: wildcards and controls are all below '0'.
    if (b < ZERO) {
      if (b < 0x20) return ReasonCode.MalformedPacket
      if (b === PLUS || b === HASH) return ReasonCode.TopicNameInvalid
    } else if (b >= DEL) {
      if (b === DEL) return ReasonCode.MalformedPacket
      ascii = false
    }
  }
  if (!ascii && isRefusedString(buf, start, end)) return ReasonCode.MalformedPacket
  return 0
}

/** The topic rules for a will topic the decoder already read (and held to the UTF-8 rule). */
export function checkTopicNameString(topic: string): number {
  if (topic.length === 0) return ReasonCode.TopicNameInvalid
  if (topic.includes('\u0000')) return ReasonCode.MalformedPacket
  if (topic.includes('+') || topic.includes('#')) return ReasonCode.TopicNameInvalid
  return 0
}

/**
 * A Topic Filter (SUBSCRIBE, UNSUBSCRIBE):
 * - at least one character [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2];
 * - '#' only alone in the last level [MQTT-4.7.1-1]; '+' only alone in its level [MQTT-4.7.1-2];
 * - a shared subscription `$share/{ShareName}/{filter}`: the share name is non-empty and holds
 *   no '/', '+' or '#', and a filter follows [MQTT-4.8.2-1], [MQTT-4.8.2-2].
 */
export function checkTopicFilter(filter: string): number {
  const length = filter.length
  if (length === 0) return ReasonCode.TopicFilterInvalid
  let from = 0
  if (filter.startsWith('$share/')) {
    const slash = filter.indexOf('/', 7)
    if (slash <= 7 || slash === length - 1) return ReasonCode.TopicFilterInvalid
    for (let i = 7; i < slash; i++) {
      const c = filter.charCodeAt(i)
      if (c === PLUS || c === HASH) return ReasonCode.TopicFilterInvalid
    }
    from = slash + 1
  }
  for (let i = from; i < length; i++) {
    const c = filter.charCodeAt(i)
    if (c === 0) return ReasonCode.MalformedPacket
    if (c === HASH) {
      if (i !== length - 1) return ReasonCode.TopicFilterInvalid
      if (i > from && filter.charCodeAt(i - 1) !== SLASH) return ReasonCode.TopicFilterInvalid
    } else if (c === PLUS) {
      if (i > from && filter.charCodeAt(i - 1) !== SLASH) return ReasonCode.TopicFilterInvalid
      if (i < length - 1 && filter.charCodeAt(i + 1) !== SLASH) return ReasonCode.TopicFilterInvalid
    }
  }
  return 0
}

/**
 * A Client Identifier: a UTF-8 string without U+0000 (checked on the raw bytes at decode time).
 * 3.1 requires one (an empty id is refused, as the broker refuses it); its 23-byte limit is not
 * applied, as Mosquitto does not apply it: 3.1.1 and 5.0 let the server accept longer ids
 * [MQTT-3.1.3-5], and Moat does up to 65,535 bytes (the field's maximum) in every version.
 */
export function checkClientId(clientId: string, protocolLevel: number): number {
  if (clientId.includes('\u0000')) return ReasonCode.MalformedPacket
  if (protocolLevel === 3 && clientId.length === 0) {
    return ReasonCode.ClientIdentifierNotValid
  }
  return 0
}
