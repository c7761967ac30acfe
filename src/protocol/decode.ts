/**
 * Full decoding of the rare, complex packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE, AUTH, DISCONNECT)
 * with mqtt-packet, wrapped so that (STYLE H9):
 * - it is fed exactly one complete, size-capped frame per call, so its internal list never holds more;
 * - SUBSCRIBE and UNSUBSCRIBE without any topic filter are refused;
 * - its errors come back as values (a message), never as exceptions or events;
 * - the rules it does not enforce are added: every UTF-8 string field must be well-formed UTF-8
 *   [MQTT-1.5.4-1] without U+0000 [MQTT-1.5.4-2], and a packet must have no bytes after its last
 *   field (mqtt-packet reads what it needs and ignores a tail).
 */
import { isUtf8 } from 'node:buffer'
import { parser as createParser } from 'mqtt-packet'
import type { Packet } from 'mqtt-packet'
import { checkPropertyBlock, type PropertyBlock } from './properties.js'

export type { Packet }

/** What mqtt-packet's parser exposes internally and the wrapper relies on (pinned by tests). */
interface ParserInternals {
  _pos: number
  _list: { slice(start: number, end: number): Buffer }
  packet: { cmd: string; length: number }
  _parseString(): string | null
  _parseProperties(): unknown
  _newPacket(): boolean
  on(event: 'packet', fn: (p: Packet) => void): void
  on(event: 'error', fn: (e: Error) => void): void
  parse(buf: Buffer): number
  moatBadString: boolean
  moatTrailingBytes: boolean
  moatBadProperties: string | null
  moatPropertyBlocks: number
}

/** The property rules (properties.ts) of each client packet the decoder reads; others are not checked here. */
const PROPERTY_BLOCKS: Record<string, PropertyBlock> = {
  subscribe: 'subscribe', unsubscribe: 'unsubscribe', disconnect: 'disconnect', auth: 'auth',
  puback: 'ack', pubrec: 'ack', pubrel: 'ack', pubcomp: 'ack',
}

// The 5.0 acks too (they are decoded only when they carry properties): found by the fuzz suite.
const FULLY_READ = new Set(['connect', 'subscribe', 'unsubscribe', 'auth', 'disconnect', 'puback', 'pubrec', 'pubrel', 'pubcomp'])

export class PacketDecoder {
  /** Made on the first decode: most sessions hold one for months and use it a handful of times (memory per idle connection). */
  private parser: ParserInternals | null = null
  private readonly protocolVersion: number | undefined
  private packet: Packet | null = null
  private error: string | null = null

  /** `protocolVersion`: the version from the client's CONNECT; omit to decode a CONNECT. */
  constructor(protocolVersion?: number) {
    this.protocolVersion = protocolVersion
  }

  private makeParser(): ParserInternals {
    const protocolVersion = this.protocolVersion
    const parser = (protocolVersion === undefined ? createParser() : createParser({ protocolVersion })) as unknown as ParserInternals
    const parseString = parser._parseString
    const newPacket = parser._newPacket
    const parseProperties = parser._parseProperties
    parser.moatBadString = false
    parser.moatTrailingBytes = false
    parser.moatBadProperties = null
    parser.moatPropertyBlocks = 0
    parser._parseString = function checkedParseString(this: ParserInternals): string | null {
      const start = this._pos + 2
      const result = parseString.call(this)
      if (result !== null && !this.moatBadString) {
        if (result.includes('\u0000')) this.moatBadString = true
        else if (result.includes('\uFFFD') && !isUtf8(this._list.slice(start, this._pos))) this.moatBadString = true
      }
      return result
    }
    parser._parseProperties = function checkedParseProperties(this: ParserInternals): unknown {
      const start = this._pos
      const result = parseProperties.call(this)
      const cmd = this.packet.cmd
      const block = cmd === 'connect' ? (this.moatPropertyBlocks++ === 0 ? 'connect' : 'will') : PROPERTY_BLOCKS[cmd]
      if (result === false || block === undefined || this.moatBadProperties !== null) return result
      try {
        this.moatBadProperties = checkPropertyBlock(this._list.slice(0, this.packet.length), start, this._pos, block)
      } catch {
        this.moatBadProperties = 'property block overruns the packet'
      }
      return result
    }
    parser._newPacket = function checkedNewPacket(this: ParserInternals): boolean {
      if (FULLY_READ.has(this.packet.cmd) && this._pos !== this.packet.length) this.moatTrailingBytes = true
      return newPacket.call(this)
    }
    parser.on('packet', (packet) => { this.packet = packet })
    parser.on('error', (error) => { this.error = error.message })
    this.parser = parser
    return parser
  }

  /**
   * Decodes one complete frame. Returns the packet, or null with `lastError` saying why. A decoder
   * is reused across frames (and CONNECT's across sessions: `connectDecoder`); after a failure its
   * parser, which may hold the rest of a bad frame, is dropped and the next frame gets a new one.
   */
  decode(frame: Buffer): Packet | null {
    const packet = this.decodeWith(this.parser ?? this.makeParser(), frame)
    this.packet = null // not kept past the call (a CONNECT's password)
    if (packet === null) this.parser = null
    return packet
  }

  private decodeWith(parser: ParserInternals, frame: Buffer): Packet | null {
    this.error = null
    parser.moatBadString = false
    parser.moatTrailingBytes = false
    parser.moatBadProperties = null
    parser.moatPropertyBlocks = 0
    let left: number
    try {
      left = parser.parse(frame)
    } catch (err) {
      // mqtt-packet reports through 'error'; a throw is a bug in it, still only this client's problem.
      this.error = `decoder failure: ${(err as Error).message}`
      return null
    }
    if (this.error !== null) return null
    if (parser.moatBadString) {
      this.error = 'a UTF-8 string field is not well-formed UTF-8 or contains U+0000'
      return null
    }
    if (parser.moatBadProperties !== null) {
      this.error = parser.moatBadProperties
      return null
    }
    if (parser.moatTrailingBytes) {
      this.error = 'bytes after the last field of the packet'
      return null
    }
    const packet = this.packet as Packet | null
    if (packet === null || left !== 0) {
      this.error = 'incomplete packet'
      return null
    }
    // SUBSCRIBE and UNSUBSCRIBE MUST carry at least one topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2].
    if ((packet.cmd === 'subscribe' && packet.subscriptions.length === 0) ||
      (packet.cmd === 'unsubscribe' && packet.unsubscriptions.length === 0)) {
      this.error = `${packet.cmd} without a topic filter`
      return null
    }
    return packet
  }

  get lastError(): string {
    return this.error ?? ''
  }
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
 * The decoder of every CONNECT (decoding is synchronous, and a decoded packet holds no view of the
 * parser's memory, only of the frame): one mqtt-packet parser for the process instead of one per
 * connection (a parser and its buffer list stream cost about 3 % of a CONNECT round; issue 8).
 */
export const connectDecoder = new PacketDecoder()
