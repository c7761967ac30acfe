import fc from 'fast-check'
import { generate } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { Framer, FrameError, readVarint, VARINT_INCOMPLETE, VARINT_MALFORMED, type FrameSink } from '../../../src/protocol/framer.js'
import { varint } from '../../helpers/bytes.js'

interface Collected {
  frames: Buffer[]
  types: number[]
  bodyOffsets: number[]
  errors: Array<{ error: FrameError; size: number }>
}

class Collector implements FrameSink {
  readonly got: Collected = { frames: [], types: [], bodyOffsets: [], errors: [] }
  stopAfter = -1
  onFrame(buf: Buffer, start: number, end: number, type: number, _flags: number, bodyOffset: number): boolean {
    // Copy: the framer hands out ranges of the caller's chunk.
    this.got.frames.push(Buffer.from(buf.subarray(start, end)))
    this.got.types.push(type)
    this.got.bodyOffsets.push(bodyOffset)
    return this.got.frames.length !== this.stopAfter
  }
  onFrameError(error: FrameError, size: number): void {
    this.got.errors.push({ error, size })
  }
}

/** Buffer.equals, not toEqual: deep equality walks 20 KB buffers byte by byte. */
function expectFrames(got: Collected, expected: Buffer[], label = ''): void {
  expect(got.errors, label).toEqual([])
  expect(got.frames.length, label).toBe(expected.length)
  got.frames.forEach((f, i) => expect(f.equals(expected[i]!), `${label} frame ${i}`).toBe(true))
}

function frameAll(chunks: Buffer[], max = 1 << 20): Collected {
  const sink = new Collector()
  const framer = new Framer(sink, max)
  for (const c of chunks) framer.push(c)
  return sink.got
}

const packets: Buffer[] = [
  generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c1', clean: true, keepalive: 30 }),
  generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }),
  generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(200, 7), qos: 1, messageId: 5, retain: false, dup: false }),
  generate({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(20_000, 9), qos: 0, retain: false, dup: false }),
  generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'x/#', qos: 1 }] }),
  generate({ cmd: 'pingreq' }),
  generate({ cmd: 'disconnect' }),
]
const stream = Buffer.concat(packets)


describe('readVarint', () => {
  it.each([
    [[0x00], 0], [[0x7f], 127], [[0x80, 0x01], 128], [[0xff, 0x7f], 16_383],
    [[0x80, 0x80, 0x01], 16_384], [[0xff, 0xff, 0xff, 0x7f], 268_435_455],
  ])('decodes %j as %d [MQTT-1.5.5]', (bytes, value) => {
    expect(readVarint(Buffer.from([0x30, ...bytes]), 1, bytes.length + 1)).toBe(value)
  })

  it('refuses a fifth length byte [MQTT-1.5.5]', () => {
    expect(readVarint(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 1, 6)).toBe(VARINT_MALFORMED)
  })

  it('refuses a longer encoding than needed [MQTT-1.5.5-1]', () => {
    expect(readVarint(Buffer.from([0x30, 0x80, 0x00]), 1, 3)).toBe(VARINT_MALFORMED)
    expect(readVarint(Buffer.from([0x30, 0x81, 0x80, 0x00]), 1, 4)).toBe(VARINT_MALFORMED)
  })

  it('says incomplete when the chunk ends inside the varint', () => {
    expect(readVarint(Buffer.from([0x30, 0x80]), 1, 2)).toBe(VARINT_INCOMPLETE)
    expect(readVarint(Buffer.from([0x30]), 1, 1)).toBe(VARINT_INCOMPLETE)
  })
})

describe('Framer', () => {
  it('yields every packet of a stream fed whole', () => {
    const got = frameAll([stream])
    expectFrames(got, packets)
    expect(got.types).toEqual([1, 3, 3, 3, 8, 12, 14])
  })

  it('yields the same frames when fed one byte at a time', () => {
    const bytes: Buffer[] = []
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1))
    expectFrames(frameAll(bytes), packets)
  })

  it('yields the same frames for every single split point', () => {
    for (let split = 0; split <= stream.length; split++) {
      expectFrames(frameAll([stream.subarray(0, split), stream.subarray(split)]), packets, `split at ${split}`)
    }
  })

  it('yields the same frames for any split into chunks (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b)
      const chunks: Buffer[] = []
      let last = 0
      for (const p of points) { chunks.push(stream.subarray(last, p)); last = p }
      chunks.push(stream.subarray(last))
      expectFrames(frameAll(chunks), packets)
    }), { numRuns: 300 })
  })

  it('hands out a frame lying within one chunk as a range of that chunk, without copying it', () => {
    const chunk = Buffer.concat([packets[1]!, packets[5]!])
    const seen: Array<[Buffer, number, number]> = []
    const framer = new Framer({ onFrame: (b, start, end) => { seen.push([b, start, end]); return true }, onFrameError: () => {} }, 1024)
    framer.push(chunk)
    expect(seen).toEqual([[chunk, 0, packets[1]!.length], [chunk, packets[1]!.length, chunk.length]])
    expect(seen[0]![0]).toBe(chunk)
  })

  it('reports the body offset after the fixed header', () => {
    const got = frameAll([stream])
    expect(got.bodyOffsets).toEqual(packets.map((p) => 1 + varint(p.length - 1 - (p.length > 129 ? (p.length > 16_386 ? 3 : 2) : 1)).length))
  })

  it('refuses a frame over the cap from its header alone, before any body byte', () => {
    const header = Buffer.from([0x30, ...varint(200 * 1024 * 1024)])
    const sink = new Collector()
    const framer = new Framer(sink, 256 * 1024)
    framer.push(header)
    expect(sink.got.errors).toEqual([{ error: FrameError.TooLarge, size: 1 + 4 + 200 * 1024 * 1024 }])
    expect(framer.bufferedBytes).toBe(0)
    framer.push(Buffer.alloc(1024))
    expect(sink.got.frames).toEqual([])
    expect(framer.bufferedBytes).toBe(0)
  })

  it('refuses a frame over the cap when its header arrives one byte at a time', () => {
    const header = Buffer.from([0x30, ...varint(300_000)])
    const sink = new Collector()
    const framer = new Framer(sink, 256 * 1024)
    for (const b of header) framer.push(Buffer.from([b]))
    expect(sink.got.errors).toEqual([{ error: FrameError.TooLarge, size: 1 + 3 + 300_000 }])
  })

  it('accepts a frame exactly at the cap and refuses one byte more', () => {
    const atCap = generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(100), qos: 0, retain: false, dup: false })
    expect(frameAll([atCap], atCap.length).frames).toHaveLength(1)
    expect(frameAll([atCap], atCap.length - 1).errors[0]!.error).toBe(FrameError.TooLarge)
  })

  it('refuses a five-byte Remaining Length', () => {
    const got = frameAll([Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])])
    expect(got.errors).toEqual([{ error: FrameError.MalformedLength, size: 0 }])
  })

  it('grows a partial frame with the bytes that arrive, not with the declared size', () => {
    const big = generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(500_000, 1), qos: 0, retain: false, dup: false })
    const sink = new Collector()
    const framer = new Framer(sink, 1 << 20)
    framer.push(big.subarray(0, 10))
    expect(framer.bufferedBytes).toBe(10)
    framer.push(big.subarray(10, 1000))
    expect(framer.bufferedBytes).toBe(1000)
    framer.push(big.subarray(1000))
    expectFrames(sink.got, [big])
    expect(framer.bufferedBytes).toBe(0)
  })

  it('stops when the sink says so, holds the rest, and resumes in order', () => {
    const sink = new Collector()
    sink.stopAfter = 1
    const framer = new Framer(sink, 1 << 20)
    framer.push(stream.subarray(0, 50))
    expect(sink.got.frames).toHaveLength(1)
    expect(framer.isStopped).toBe(true)
    framer.push(stream.subarray(50))
    expect(sink.got.frames).toHaveLength(1)
    expect(framer.bufferedBytes).toBe(stream.length - packets[0]!.length)
    framer.resume()
    expectFrames(sink.got, packets)
  })

  it('ignores everything after a framing error', () => {
    const sink = new Collector()
    const framer = new Framer(sink, 16)
    framer.push(packets[2]!) // 200-byte payload: over the 16-byte cap
    framer.push(packets[5]!)
    expect(sink.got.errors).toHaveLength(1)
    expect(sink.got.frames).toEqual([])
    expect(framer.isFailed).toBe(true)
  })

  it('never throws on random bytes; it yields frames or one typed error (property)', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), fc.integer({ min: 2, max: 4096 }), (chunks, cap) => {
      const sink = new Collector()
      const framer = new Framer(sink, cap)
      for (const c of chunks) framer.push(Buffer.from(c))
      expect(sink.got.errors.length).toBeLessThanOrEqual(1)
      for (const e of sink.got.errors) expect(Object.values(FrameError)).toContain(e.error)
      for (const f of sink.got.frames) expect(f.length).toBeLessThanOrEqual(cap)
      expect(framer.bufferedBytes).toBeLessThanOrEqual(chunks.reduce((n, c) => n + c.length, 0))
    }), { numRuns: 500 })
  })
})

/**
 * Chunks lent for one call only (src/net/lent-reads.ts): every chunk is pushed from one scratch
 * buffer that is overwritten as soon as push returns, the way the shared read buffer is reused by
 * the next read. Whatever the framer keeps must be its own copy.
 */
describe('Framer with lent chunks', () => {
  const scratch = Buffer.alloc(stream.length + 16)

  function pushLent(framer: Framer, bytes: Buffer): void {
    bytes.copy(scratch, 0)
    framer.push(scratch, bytes.length, true)
    scratch.fill(0xee)
  }

  it('frames only chunk[0, end)', () => {
    const sink = new Collector()
    const framer = new Framer(sink, 1 << 20)
    const chunk = Buffer.concat([packets[1]!, Buffer.from([0x30, 0x7f, 0x00])]) // a partial PUBLISH after the end
    framer.push(chunk, packets[1]!.length, false)
    expectFrames(sink.got, [packets[1]!])
    expect(framer.atBoundary).toBe(true)
  })

  it('yields the same frames for every split point, each chunk overwritten after push', () => {
    for (let split = 0; split <= stream.length; split++) {
      const sink = new Collector()
      const framer = new Framer(sink, 1 << 20)
      pushLent(framer, stream.subarray(0, split))
      pushLent(framer, stream.subarray(split))
      expectFrames(sink.got, packets, `split at ${split}`)
    }
  })

  it('copies what it holds while stopped: the rest of a lent chunk and lent chunks pushed meanwhile', () => {
    const sink = new Collector()
    sink.stopAfter = 1
    const framer = new Framer(sink, 1 << 20)
    pushLent(framer, stream.subarray(0, 50))
    expect(framer.isStopped).toBe(true)
    pushLent(framer, stream.subarray(50, 300))
    pushLent(framer, stream.subarray(300))
    expect(framer.bufferedBytes).toBe(stream.length - packets[0]!.length)
    sink.stopAfter = -1
    framer.resume()
    expectFrames(sink.got, packets)
  })

  it('yields the same frames for any split into lent chunks (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 40 }), fc.integer({ min: 0, max: 8 }), (cuts, stopAt) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b)
      const sink = new Collector()
      sink.stopAfter = stopAt // 0: never stops
      const framer = new Framer(sink, 1 << 20)
      let last = 0
      for (const p of [...points, stream.length]) {
        pushLent(framer, stream.subarray(last, p))
        last = p
      }
      sink.stopAfter = -1
      framer.resume()
      expectFrames(sink.got, packets)
    }), { numRuns: 300 })
  })
})
