/**
 * A bounds-checked cursor over one packet, and the classified faults it reports. Used by the
 * decoder (decode.ts) and the property reader (properties.ts); a fault is thrown as a DecodeFailure
 * and caught by PacketDecoder.decode, which turns it into a value.
 */
import { isRefusedString } from './utf8.js'

/**
 * What kind of fault made a packet undecodable, so that the session can answer as the broker would:
 * - Malformed: the bytes do not follow the packet's grammar (5.0: Malformed Packet);
 * - ProtocolError: grammatical, but a value the spec forbids there (5.0: Protocol Error);
 * - BadString: a string field the broker refuses (utf8.ts), which Mosquitto answers differently
 *   from other faults (often with a bare close);
 * - TooManyUserProperties: Moat's own cap (properties.ts), answered with Quota Exceeded.
 */
export const DecodeFault = {
  Malformed: 'malformed',
  ProtocolError: 'protocol_error',
  BadString: 'bad_string',
  TooManyUserProperties: 'too_many_user_properties',
} as const
export type DecodeFault = (typeof DecodeFault)[keyof typeof DecodeFault]

/**
 * Where the fault is: the field of the packet. `properties` is the packet's own property block,
 * `will_properties` the will's in a CONNECT.
 */
export type DecodeField =
  | 'header' | 'protocol' | 'connect_flags' | 'keepalive' | 'client_id' | 'will_topic' | 'will_payload'
  | 'username' | 'password' | 'packet_id' | 'topic_filter' | 'subscription_options' | 'reason_code'
  | 'ack_flags' | 'properties' | 'will_properties' | 'trailing'

/** Thrown inside the decoder only; not an Error, so no stack is captured for a hostile packet. */
export class DecodeFailure {
  constructor(readonly fault: DecodeFault, readonly field: DecodeField, readonly message: string) {}
}

export function fail(fault: DecodeFault, field: DecodeField, message: string): never {
  throw new DecodeFailure(fault, field, message)
}

export class Reader {
  /** User Properties one property block may carry (properties.ts); set by the decoder per packet. */
  maxUserProperties = Infinity

  /** Reads `buf[pos, end)`; `limit` names what `end` is, for the fault message. */
  constructor(readonly buf: Buffer, public pos: number, public end: number, private readonly limit = 'the packet') {}

  get left(): number {
    return this.end - this.pos
  }

  private need(n: number, field: DecodeField): void {
    if (this.pos + n > this.end) fail(DecodeFault.Malformed, field, `${field}: a value overruns ${this.limit}`)
  }

  byte(field: DecodeField): number {
    this.need(1, field)
    return this.buf[this.pos++]!
  }

  u16(field: DecodeField): number {
    this.need(2, field)
    const value = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return value
  }

  u32(field: DecodeField): number {
    this.need(4, field)
    const value = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return value
  }

  /** A Variable Byte Integer: at most 4 bytes, minimally encoded [MQTT-1.5.5-1]. */
  varint(field: DecodeField): number {
    let value = 0
    let multiplier = 1
    for (let i = 0; i < 4; i++) {
      const b = this.byte(field)
      value += (b & 0x7f) * multiplier
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) fail(DecodeFault.Malformed, field, `${field}: variable byte integer not minimally encoded`)
        return value
      }
      multiplier *= 128
    }
    return fail(DecodeFault.Malformed, field, `${field}: variable byte integer longer than 4 bytes`)
  }

  /** Bounds of a two-byte-length-prefixed field: [start, end) of its bytes; the cursor moves past it. */
  private field(field: DecodeField): number {
    const length = this.u16(field)
    this.need(length, field)
    const start = this.pos
    this.pos += length
    return start
  }

  /** A UTF-8 Encoded String, held to the broker's rule (utf8.ts). */
  string(field: DecodeField): string {
    const start = this.field(field)
    if (isRefusedString(this.buf, start, this.pos)) fail(DecodeFault.BadString, field, `${field}: a string the broker refuses (ill-formed UTF-8, U+0000, a control character or a non-character)`)
    return this.buf.toString('utf8', start, this.pos)
  }

  /** Binary Data: a view of the frame (the decoded packet lives no longer than the frame). */
  binary(field: DecodeField): Buffer {
    const start = this.field(field)
    return this.buf.subarray(start, this.pos)
  }
}
