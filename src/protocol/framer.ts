/**
 * Incremental MQTT framing: fed arbitrary chunks of a byte stream, yields whole packets.
 *
 * - A frame that lies within one chunk is handed on as (chunk, start, end): no copy, and no Buffer
 *   view made per frame (a `subarray` costs ~96 bytes of heap; the sink makes one only where it
 *   needs a Buffer of its own, off the PUBLISH path).
 * - A frame spanning chunks is assembled in a buffer that grows only as bytes arrive, up to
 *   `min(declared size, maxPacketSize)`; it is never allocated at the declared size up front,
 *   so a client that declares 200 MB and trickles bytes costs nothing.
 * - The Remaining Length varint is at most 4 bytes and minimally encoded [MQTT-1.5.5-1]; anything
 *   else is a framing error. A frame whose declared size exceeds the cap is refused as soon as the
 *   varint is complete, before a byte of its body is buffered.
 * - Errors are values handed to the sink, never exceptions.
 * - The sink may stop the framer (return false from onFrame); the unprocessed rest is held, without
 *   copying, until `resume()`. That is how a session waits for an asynchronous decision or for
 *   the other socket to drain without losing bytes.
 * - A chunk pushed as `lent` is valid only during `push` (net/lent-reads.ts: one read buffer shared
 *   by every socket): what the framer keeps of it past the call (a held rest) is copied; a partial
 *   frame is always assembled in the framer's own buffer anyway.
 */

export const FrameError = {
  MalformedLength: 'malformed_remaining_length',
  TooLarge: 'packet_too_large',
} as const
export type FrameError = (typeof FrameError)[keyof typeof FrameError]

export interface FrameSink {
  /**
   * A complete packet: `buf[start, end)` holds the fixed header and the body; the body starts at
   * `start + bodyOffset`. `buf` is only valid during the call unless the sink keeps it (the framer
   * never writes into a chunk it handed on). Return false to stop the framer (the rest is held
   * until resume()).
   */
  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean
  /** The stream is not MQTT (or breaks the cap): the framer is dead after this call. */
  onFrameError(error: FrameError, declaredSize: number): void
}

/** `buf[start, end)` as a Buffer of its own: the buffer itself when that is all of it, else a view (no copy). */
export function frameBuffer(buf: Buffer, start: number, end: number): Buffer {
  return start === 0 && end === buf.length ? buf : buf.subarray(start, end)
}

/** A copy of `buf[start, end)` (what is kept of a chunk lent for one call only). */
export function copyRange(buf: Buffer, start: number, end: number): Buffer {
  const copy = Buffer.allocUnsafe(end - start)
  buf.copy(copy, 0, start, end)
  return copy
}

/** `buf[start, end)` to keep past the call: a copy when `buf` is lent for the call only, else a view. */
export function keptRange(buf: Buffer, start: number, end: number, lent: boolean): Buffer {
  return lent ? copyRange(buf, start, end) : frameBuffer(buf, start, end)
}

/** Largest value of a 4-byte variable byte integer: 268,435,455 [MQTT-1.5.5]. */
export const MAX_REMAINING_LENGTH = 268_435_455
const INITIAL_ASSEMBLY = 4096

/**
 * Decodes a Remaining Length varint at `pos` (the byte after the first header byte).
 * Returns the value, VARINT_INCOMPLETE when `end` comes first, or VARINT_MALFORMED.
 */
export const VARINT_INCOMPLETE = -1
export const VARINT_MALFORMED = -2
export function readVarint(buf: Buffer, pos: number, end: number): number {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    if (pos + i >= end) return VARINT_INCOMPLETE
    const byte = buf[pos + i]!
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) {
      // A trailing zero byte after the first means a longer encoding than needed [MQTT-1.5.5-1].
      if (byte === 0 && i > 0) return VARINT_MALFORMED
      return value
    }
    multiplier *= 128
  }
  return VARINT_MALFORMED
}

/** The minimal varint encoding of `value` (a Remaining Length or Property Length). */
export function encodeVarint(value: number): Buffer {
  const out = Buffer.alloc(varintSize(value))
  for (let i = 0; i < out.length; i++) {
    const byte = value % 128
    value = Math.floor(value / 128)
    out[i] = value > 0 ? byte | 0x80 : byte
  }
  return out
}

/** Number of bytes of the minimal varint encoding of `value` (values are minimal by construction). */
export function varintSize(value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
}

export class Framer {
  private readonly sink: FrameSink
  maxPacketSize: number

  // A header (type byte + varint, at most 5 bytes) that arrived split across chunks; made the first
  // time that happens (rare), so an idle connection does not hold a buffer for it.
  private header: Buffer | null = null
  private headerLength = 0

  // A frame being assembled across chunks.
  private assembly: Buffer | null = null
  private assembled = 0
  private frameSize = 0
  private bodyOffset = 0

  // Bytes not yet processed because the sink stopped us.
  // Made the first time the sink stops the framer with bytes left (an idle connection holds none).
  private held: Buffer[] | null = null
  private heldBytes = 0
  private stopped = false
  private failed = false

  constructor(sink: FrameSink, maxPacketSize: number) {
    this.sink = sink
    this.maxPacketSize = maxPacketSize
  }

  /** Bytes received but not yet handed on (partial frame + held while stopped). */
  get bufferedBytes(): number {
    return this.headerLength + this.assembled + this.heldBytes
  }

  get isStopped(): boolean {
    return this.stopped
  }

  get isFailed(): boolean {
    return this.failed
  }

  /** True when no partial frame is pending (the stream ends on a packet boundary). */
  get atBoundary(): boolean {
    return this.headerLength === 0 && this.assembly === null && this.heldBytes === 0
  }

  /**
   * Feeds `chunk[0, end)`. `lent`: the chunk is only valid during this call (the framer copies what
   * it keeps); otherwise the framer may keep views of it (it never writes into it).
   */
  push(chunk: Buffer, end: number = chunk.length, lent = false): void {
    if (this.failed || end === 0) return
    if (this.stopped) {
      const held = this.held ?? (this.held = [])
      held.push(keptRange(chunk, 0, end, lent))
      this.heldBytes += end
      return
    }
    this.process(chunk, 0, end, lent)
  }

  /** Continue after the sink returned false. Processes what was held, in order. */
  resume(): void {
    if (!this.stopped || this.failed) return
    this.stopped = false
    const held = this.held
    while (held !== null && held.length > 0 && !this.stopped && !this.failed) {
      const chunk = held.shift()!
      this.heldBytes -= chunk.length
      this.process(chunk, 0, chunk.length, false)
    }
  }

  /** Stop from outside (e.g. while the session waits); bytes pushed meanwhile are held. */
  stop(): void {
    this.stopped = true
  }

  /** Drop everything: the session is closing. */
  reset(): void {
    this.held = null
    this.heldBytes = 0
    this.assembly = null
    this.assembled = 0
    this.headerLength = 0
    this.failed = true
  }

  private process(chunk: Buffer, start: number, end: number, lent: boolean): void {
    let pos = start
    while (pos < end) {
      if (this.assembly !== null) {
        pos = this.continueAssembly(chunk, pos, end)
        if (this.assembled < this.frameSize) return // chunk used up
        if (!this.emitAssembled()) return this.hold(chunk, pos, end, lent)
        continue
      }
      if (this.headerLength > 0) {
        pos = this.continueHeader(chunk, pos, end)
        if (this.failed) return
        // A packet with no body (PINGREQ, DISCONNECT) is complete with its header.
        if (this.assembly !== null && this.assembled === this.frameSize && !this.emitAssembled()) {
          return this.hold(chunk, pos, end, lent)
        }
        continue
      }
      // Fast path: the header is in this chunk.
      const remaining = readVarint(chunk, pos + 1, end)
      if (remaining === VARINT_INCOMPLETE) {
        chunk.copy(this.header ??= Buffer.alloc(5), 0, pos, end)
        this.headerLength = end - pos // at most 4: readVarint saw no 4th varint byte
        return
      }
      if (remaining === VARINT_MALFORMED) return this.fail(FrameError.MalformedLength, 0)
      const headerSize = 1 + varintSize(remaining)
      const size = headerSize + remaining
      if (size > this.maxPacketSize) return this.fail(FrameError.TooLarge, size)
      const first = chunk[pos]!
      if (pos + size <= end) {
        const frameStart = pos
        pos += size
        if (!this.sink.onFrame(chunk, frameStart, pos, first >> 4, first & 0x0f, headerSize)) return this.hold(chunk, pos, end, lent)
        continue
      }
      // The frame continues in a later chunk: start assembling.
      this.startAssembly(size, headerSize)
      pos = this.continueAssembly(chunk, pos, end)
      return
    }
  }

  private continueHeader(chunk: Buffer, pos: number, end: number): number {
    const header = this.header!
    while (pos < end && this.headerLength < 5) {
      header[this.headerLength++] = chunk[pos++]!
      const remaining = readVarint(header, 1, this.headerLength)
      if (remaining === VARINT_INCOMPLETE) continue
      if (remaining === VARINT_MALFORMED) {
        this.fail(FrameError.MalformedLength, 0)
        return end
      }
      const headerSize = this.headerLength
      const size = headerSize + remaining
      if (size > this.maxPacketSize) {
        this.fail(FrameError.TooLarge, size)
        return end
      }
      this.headerLength = 0
      this.startAssembly(size, headerSize)
      header.copy(this.assembly!, 0, 0, headerSize)
      this.assembled = headerSize
      return pos
    }
    return end
  }

  private startAssembly(size: number, headerSize: number): void {
    this.frameSize = size
    this.bodyOffset = headerSize
    this.assembled = 0
    // Grows with the bytes that arrive; never sized by what the peer merely declares.
    this.assembly = Buffer.allocUnsafe(Math.min(size, INITIAL_ASSEMBLY))
  }

  private continueAssembly(chunk: Buffer, pos: number, end: number): number {
    const want = this.frameSize - this.assembled
    const take = Math.min(want, end - pos)
    let buf = this.assembly!
    const needed = this.assembled + take
    if (needed > buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.frameSize, Math.max(needed, buf.length * 2)))
      buf.copy(grown, 0, 0, this.assembled)
      buf = grown
      this.assembly = grown
    }
    chunk.copy(buf, this.assembled, pos, pos + take)
    this.assembled += take
    return pos + take
  }

  /** Called when the assembly is complete; hands it to the sink. */
  private emitAssembled(): boolean {
    const buf = this.assembly!
    this.assembly = null
    this.assembled = 0
    const first = buf[0]!
    return this.sink.onFrame(buf, 0, this.frameSize, first >> 4, first & 0x0f, this.bodyOffset)
  }

  private hold(chunk: Buffer, pos: number, end: number, lent: boolean): void {
    if (this.failed) return
    this.stopped = true
    if (pos < end) {
      const rest = keptRange(chunk, pos, end, lent)
      const held = this.held ?? (this.held = [])
      held.unshift(rest)
      this.heldBytes += rest.length
    }
  }

  private fail(error: FrameError, declaredSize: number): void {
    this.reset()
    this.sink.onFrameError(error, declaredSize)
  }
}
