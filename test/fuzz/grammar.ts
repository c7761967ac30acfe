/**
 * A strict MQTT grammar for the client → server direction (3.1, 3.1.1 and 5.0), written for the fuzz
 * suite independently of Moat's own validator (src/protocol/*): the recording upstream runs every
 * packet Moat forwards through it, so a rule Moat forgets shows up as a violation here rather than
 * being checked against itself.
 *
 * One `ClientStream` per connection: it knows the version from the CONNECT and follows the 5.0
 * topic aliases the client binds, so the policy sees the real topic of an alias-only PUBLISH.
 * Each method returns null when the packet is grammatical and allowed, otherwise why not.
 */
import { isUtf8 } from 'node:buffer'

export interface Policy {
  /** May this client publish to `topic` (a payload of `payloadLength` bytes)? */
  publish(topic: string, payloadLength: number): boolean
  /** May this client subscribe to `filter`? */
  subscribe(filter: string): boolean
}

export const allowAll: Policy = { publish: () => true, subscribe: () => true }

// 5.0 property identifiers: [type, packets that may carry it (client → server only)].
type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'
const PROPS: Record<number, [string, PropType]> = {
  0x01: ['payloadFormat', 'byte'], 0x02: ['messageExpiry', 'u32'], 0x03: ['contentType', 'string'],
  0x08: ['responseTopic', 'string'], 0x09: ['correlationData', 'binary'], 0x0b: ['subscriptionId', 'varint'],
  0x11: ['sessionExpiry', 'u32'], 0x12: ['assignedClientId', 'string'], 0x13: ['serverKeepAlive', 'u16'],
  0x15: ['authMethod', 'string'], 0x16: ['authData', 'binary'], 0x17: ['requestProblemInfo', 'byte'],
  0x18: ['willDelay', 'u32'], 0x19: ['requestResponseInfo', 'byte'], 0x1a: ['responseInfo', 'string'],
  0x1c: ['serverReference', 'string'], 0x1f: ['reasonString', 'string'], 0x21: ['receiveMaximum', 'u16'],
  0x22: ['topicAliasMaximum', 'u16'], 0x23: ['topicAlias', 'u16'], 0x24: ['maximumQos', 'byte'],
  0x25: ['retainAvailable', 'byte'], 0x26: ['userProperty', 'pair'], 0x27: ['maximumPacketSize', 'u32'],
  0x28: ['wildcardAvailable', 'byte'], 0x29: ['subscriptionIdAvailable', 'byte'], 0x2a: ['sharedAvailable', 'byte'],
}
/** Which identifiers each client packet (or the will) may carry: MQTT 5.0 table 2-4. */
const ALLOWED: Record<string, ReadonlySet<number>> = {
  connect: new Set([0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27]),
  will: new Set([0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26]),
  publish: new Set([0x01, 0x02, 0x03, 0x08, 0x09, 0x23, 0x26]), // no Subscription Identifier from a client [MQTT-3.3.4-6]
  ack: new Set([0x1f, 0x26]),
  subscribe: new Set([0x0b, 0x26]),
  unsubscribe: new Set([0x26]),
  disconnect: new Set([0x11, 0x1c, 0x1f, 0x26]),
  auth: new Set([0x15, 0x16, 0x1f, 0x26]),
}
const PUBACK_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])
const PUBREL_CODES = new Set([0x00, 0x92])
const DISCONNECT_CODES = new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2])
const AUTH_CODES = new Set([0x00, 0x18, 0x19])

class Fault extends Error {}
function fail(why: string): never {
  throw new Fault(why)
}

/** A cursor over one packet's body. Every read checks its bounds. */
class Reader {
  pos: number
  constructor(readonly buf: Buffer, start: number, public end: number) {
    this.pos = start
  }

  get left(): number {
    return this.end - this.pos
  }

  byte(what: string): number {
    if (this.pos + 1 > this.end) fail(`${what}: packet too short`)
    return this.buf[this.pos++]!
  }

  u16(what: string): number {
    if (this.pos + 2 > this.end) fail(`${what}: packet too short`)
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }

  u32(what: string): number {
    if (this.pos + 4 > this.end) fail(`${what}: packet too short`)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }

  varint(what: string): number {
    let value = 0
    let mult = 1
    for (let i = 0; i < 4; i++) {
      const b = this.byte(what)
      value += (b & 0x7f) * mult
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) fail(`${what}: variable byte integer not minimally encoded [MQTT-1.5.5-1]`)
        return value
      }
      mult *= 128
    }
    fail(`${what}: variable byte integer longer than 4 bytes`)
  }

  binary(what: string): Buffer {
    const length = this.u16(what)
    if (this.pos + length > this.end) fail(`${what}: length overruns the packet`)
    const out = this.buf.subarray(this.pos, this.pos + length)
    this.pos += length
    return out
  }

  /** A UTF-8 Encoded String: well-formed [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2]. */
  string(what: string): string {
    const bytes = this.binary(what)
    if (bytes.includes(0)) fail(`${what}: contains U+0000 [MQTT-1.5.4-2]`)
    if (!isUtf8(bytes)) fail(`${what}: not well-formed UTF-8 [MQTT-1.5.4-1]`)
    return bytes.toString('utf8')
  }
}

function checkTopicName(topic: string, what: string): void {
  if (topic.includes('+') || topic.includes('#')) fail(`${what} '${topic}' holds a wildcard [MQTT-3.3.2-2]`)
}

function checkFilter(filter: string): void {
  if (filter.length === 0) fail('empty topic filter [MQTT-4.7.3-1]')
  let levels = filter.split('/')
  if (filter.startsWith('$share/')) {
    if (levels.length < 3 || levels[1]!.length === 0 || /[+#]/.test(levels[1]!)) fail(`bad shared subscription '${filter}' [MQTT-4.8.2-1]`)
    levels = levels.slice(2)
    if (levels.join('/').length === 0) fail(`shared subscription without a filter '${filter}' [MQTT-4.8.2-2]`)
  }
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) fail(`'#' misplaced in '${filter}' [MQTT-4.7.1-1]`)
    if (level.includes('+') && level !== '+') fail(`'+' misplaced in '${filter}' [MQTT-4.7.1-2]`)
  }
}

/** Reads a 5.0 property block; returns the values by name (user properties counted, not kept). */
function readProperties(r: Reader, packet: keyof typeof ALLOWED): Map<string, number | string | Buffer> {
  const length = r.varint(`${packet} property length`)
  if (r.pos + length > r.end) fail(`${packet} property length overruns the packet`)
  const inner = new Reader(r.buf, r.pos, r.pos + length)
  const out = new Map<string, number | string | Buffer>()
  while (inner.left > 0) {
    const id = inner.varint(`${packet} property id`)
    const prop = PROPS[id]
    if (prop === undefined) fail(`${packet}: unknown property 0x${id.toString(16)}`)
    if (!ALLOWED[packet]!.has(id)) fail(`${packet}: property ${prop[0]} (0x${id.toString(16)}) not allowed here`)
    const [name, type] = prop
    let value: number | string | Buffer
    switch (type) {
      case 'byte': value = inner.byte(name); break
      case 'u16': value = inner.u16(name); break
      case 'u32': value = inner.u32(name); break
      case 'varint': value = inner.varint(name); break
      case 'string': value = inner.string(name); break
      case 'binary': value = inner.binary(name); break
      case 'pair': inner.string(`${name} name`); inner.string(`${name} value`); value = 0; break
    }
    if (type !== 'pair') {
      if (out.has(name)) fail(`${packet}: property ${name} appears twice`)
      out.set(name, value)
    }
  }
  r.pos += length
  // The Payload Format Indicator is a byte the spec gives meaning to at 0 and 1 without making other
  // values an error; the broker relays them, and so does Moat. The two request flags are 0 or 1.
  for (const name of ['requestProblemInfo', 'requestResponseInfo']) {
    const v = out.get(name)
    if (v !== undefined && v !== 0 && v !== 1) fail(`${packet}: ${name} ${String(v)} is neither 0 nor 1`)
  }
  for (const name of ['receiveMaximum', 'maximumPacketSize', 'subscriptionId', 'topicAlias']) {
    if (out.get(name) === 0) fail(`${packet}: ${name} 0 is a protocol error`)
  }
  const responseTopic = out.get('responseTopic')
  if (typeof responseTopic === 'string') checkTopicName(responseTopic, 'response topic')
  return out
}

export class ClientStream {
  version = 0
  private readonly aliases = new Map<number, string>()
  private topicAliasMaximum: number

  /** `topicAliasMaximum`: what the (recording) broker granted in its CONNACK. */
  constructor(private readonly policy: Policy = allowAll, topicAliasMaximum = 0) {
    this.topicAliasMaximum = topicAliasMaximum
  }

  /** Checks one whole frame. Null when grammatical and allowed; otherwise why not. */
  check(frame: Buffer): string | null {
    try {
      this.checkFrame(frame)
      return null
    } catch (err) {
      if (err instanceof Fault) return err.message
      throw err
    }
  }

  private checkFrame(frame: Buffer): void {
    if (frame.length < 2) fail('shorter than a fixed header')
    const type = frame[0]! >> 4
    const flags = frame[0]! & 0x0f
    const header = new Reader(frame, 1, frame.length)
    const remaining = header.varint('remaining length')
    if (header.pos + remaining !== frame.length) fail('remaining length does not match the frame')
    const r = new Reader(frame, header.pos, frame.length)
    if (this.version === 0) {
      if (type !== 1) fail(`first packet is type ${type}, not CONNECT [MQTT-3.1.0-1]`)
      return this.connect(r, flags)
    }
    const v5 = this.version === 5
    // MQTT 3.1's PUBREL, SUBSCRIBE and UNSUBSCRIBE may carry DUP: the grammar reads them without it.
    const qos1Flags = this.version === 3 && (flags === 0x0a) ? 2 : flags
    switch (type) {
      case 1: fail('a second CONNECT [MQTT-3.1.0-2]')
      case 3: return this.publish(r, flags)
      case 4: case 5: case 6: case 7: {
        const required = type === 6 ? 2 : 0
        if ((type === 6 ? qos1Flags : flags) !== required) fail(`ack type ${type}: reserved flags ${flags} [MQTT-2.2.2-1]`)
        if (r.u16('packet id') === 0) fail('ack with packet id 0 [MQTT-2.2.1-3]')
        if (!v5) {
          if (r.left !== 0) fail(`ack type ${type}: ${r.left} bytes after the packet id`)
          return
        }
        if (r.left === 0) return
        const code = r.byte('reason code')
        if (!(type === 4 || type === 5 ? PUBACK_CODES : PUBREL_CODES).has(code)) fail(`ack type ${type}: reason code 0x${code.toString(16)} not allowed`)
        if (r.left === 0) return
        readProperties(r, 'ack')
        break
      }
      case 8: {
        if (qos1Flags !== 2) fail(`SUBSCRIBE reserved flags ${flags} [MQTT-3.8.1-1]`)
        if (r.u16('packet id') === 0) fail('SUBSCRIBE with packet id 0 [MQTT-2.2.1-3]')
        if (v5) readProperties(r, 'subscribe')
        if (r.left === 0) fail('SUBSCRIBE without a topic filter [MQTT-3.8.3-3]')
        while (r.left > 0) {
          const filter = r.string('topic filter')
          checkFilter(filter)
          const options = r.byte('subscription options')
          if ((options & 0x03) === 3) fail('subscription QoS 3 [MQTT-3-8.3-4]')
          if (v5) {
            if ((options & 0xc0) !== 0) fail('subscription options reserved bits set [MQTT-3.8.3-5]')
            if (((options >> 4) & 0x03) === 3) fail('retain handling 3 is a protocol error')
            if ((options & 0x04) !== 0 && filter.startsWith('$share/')) fail('no local on a shared subscription [MQTT-3.8.3-4]')
          } else if ((options & 0xfc) !== 0) fail('subscription options reserved bits set [MQTT-3-8.3-4]')
          if (!this.policy.subscribe(filter)) fail(`policy: subscribe to '${filter}' is forbidden`)
        }
        return
      }
      case 10: {
        if (qos1Flags !== 2) fail(`UNSUBSCRIBE reserved flags ${flags} [MQTT-3.10.1-1]`)
        if (r.u16('packet id') === 0) fail('UNSUBSCRIBE with packet id 0 [MQTT-2.2.1-3]')
        if (v5) readProperties(r, 'unsubscribe')
        if (r.left === 0) fail('UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]')
        while (r.left > 0) checkFilter(r.string('topic filter'))
        return
      }
      case 12:
        if (flags !== 0) fail(`PINGREQ reserved flags ${flags}`)
        if (r.left !== 0) fail('PINGREQ with a body')
        return
      case 14:
        if (flags !== 0) fail(`DISCONNECT reserved flags ${flags}`)
        if (!v5 || r.left === 0) {
          if (r.left !== 0) fail('3.x DISCONNECT with a body')
          return
        }
        if (!DISCONNECT_CODES.has(r.byte('reason code'))) fail('DISCONNECT reason code not allowed')
        if (r.left > 0) readProperties(r, 'disconnect')
        break
      case 15:
        if (!v5) fail('AUTH before 5.0')
        if (flags !== 0) fail(`AUTH reserved flags ${flags}`)
        if (r.left === 0) return
        if (!AUTH_CODES.has(r.byte('reason code'))) fail('AUTH reason code not allowed')
        if (r.left > 0) readProperties(r, 'auth')
        break
      default:
        fail(`packet type ${type} never comes from a client`)
    }
    if (r.left !== 0) fail(`${r.left} bytes after the last field of type ${type}`)
  }

  private connect(r: Reader, flags: number): void {
    if (flags !== 0) fail(`CONNECT reserved flags ${flags} [MQTT-2.2.2-1]`)
    const name = r.string('protocol name')
    const level = r.byte('protocol level') & 0x7f
    if (!((name === 'MQTT' && (level === 4 || level === 5)) || (name === 'MQIsdp' && level === 3))) fail(`protocol ${name} level ${level}`)
    const cf = r.byte('connect flags')
    if ((cf & 0x01) !== 0) fail('CONNECT reserved flag set [MQTT-3.1.2-3]')
    const will = (cf & 0x04) !== 0
    const willQos = (cf >> 3) & 0x03
    if (!will && (willQos !== 0 || (cf & 0x20) !== 0)) fail('will QoS/retain without will flag [MQTT-3.1.2-11]')
    if (willQos === 3) fail('will QoS 3 [MQTT-3.1.2-14]')
    const hasUser = (cf & 0x80) !== 0
    const hasPassword = (cf & 0x40) !== 0
    if (level < 5 && hasPassword && !hasUser) fail('password without user name [MQTT-3.1.2-22]')
    r.u16('keepalive')
    if (level === 5) {
      const props = readProperties(r, 'connect')
      const max = props.get('topicAliasMaximum')
      void max
    }
    const clientId = r.string('client id')
    if (level === 3 && clientId.length === 0) fail('3.1 empty client id')
    if (will) {
      if (level === 5) readProperties(r, 'will')
      const topic = r.string('will topic')
      if (topic.length === 0) fail('empty will topic [MQTT-4.7.3-1]')
      checkTopicName(topic, 'will topic')
      const payload = r.binary('will payload')
      if (!this.policy.publish(topic, payload.length)) fail(`policy: will on '${topic}' is forbidden`)
    }
    if (hasUser) r.string('user name')
    if (hasPassword) r.binary('password')
    if (r.left !== 0) fail(`${r.left} bytes after the last CONNECT field`)
    this.version = level
  }

  private publish(r: Reader, flags: number): void {
    const qos = (flags >> 1) & 0x03
    if (qos === 3) fail('PUBLISH QoS 3 [MQTT-3.3.1-4]')
    if (qos === 0 && (flags & 0x08) !== 0) fail('DUP on a QoS 0 PUBLISH [MQTT-3.3.1-2]')
    let topic = r.string('topic name')
    checkTopicName(topic, 'topic name')
    if (qos > 0 && r.u16('packet id') === 0) fail('PUBLISH with packet id 0 [MQTT-2.2.1-3]')
    if (this.version === 5) {
      const props = readProperties(r, 'publish')
      const alias = props.get('topicAlias') as number | undefined
      if (alias !== undefined) {
        if (alias > this.topicAliasMaximum) fail(`topic alias ${alias} above the maximum ${this.topicAliasMaximum} [MQTT-3.3.2-9]`)
        if (topic.length > 0) this.aliases.set(alias, topic)
        else {
          const bound = this.aliases.get(alias)
          if (bound === undefined) fail(`topic alias ${alias} never bound [MQTT-3.3.2-10]`)
          topic = bound
        }
      } else if (topic.length === 0) fail('empty topic without an alias [MQTT-3.3.2-8]')
    } else if (topic.length === 0) fail('empty topic name [MQTT-4.7.3-1]')
    if (!this.policy.publish(topic, r.left)) fail(`policy: publish to '${topic}' (${r.left} B) is forbidden`)
  }
}

/** Splits a byte stream into frames (no validation beyond the header); the rest is kept. */
export class FrameSplitter {
  private pending: Buffer = Buffer.alloc(0)

  /** Complete frames in `chunk` (with what was held before); a broken header yields an 'error'. */
  push(chunk: Buffer): Array<Buffer | 'error'> {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const out: Array<Buffer | 'error'> = []
    for (;;) {
      if (buf.length < 2) break
      let value = 0
      let mult = 1
      let i = 1
      let complete = false
      for (; i < 5 && i < buf.length; i++) {
        value += (buf[i]! & 0x7f) * mult
        mult *= 128
        if ((buf[i]! & 0x80) === 0) {
          complete = true
          break
        }
      }
      if (!complete) {
        if (i >= 5) {
          out.push('error')
          buf = Buffer.alloc(0)
        }
        break
      }
      const size = i + 1 + value
      if (buf.length < size) break
      out.push(buf.subarray(0, size))
      buf = buf.subarray(size)
    }
    this.pending = Buffer.from(buf)
    return out
  }

  get held(): number {
    return this.pending.length
  }
}
