import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { makeTestCerts, type TestCerts } from '../../helpers/certs.js'
import { isLent, lendReads, returnLent } from '../../../src/net/lent-reads.js'
import { RunWriter } from '../../../src/session/run-writer.js'

/** A real loopback socket pair; counts the write() calls the writer makes. */
async function socketPair(): Promise<{ writer: RunWriter; writes: Buffer[]; received: () => Promise<Buffer>; close: () => void }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [peer] = (await once(server, 'connection')) as [net.Socket]
  const chunks: Buffer[] = []
  peer.on('data', (c: Buffer) => chunks.push(c))
  const writes: Buffer[] = []
  const write = client.write.bind(client)
  client.write = ((data: Buffer) => { writes.push(data); return write(data) }) as typeof client.write
  const writer = new RunWriter()
  writer.attach(client)
  return {
    writer,
    writes,
    received: async () => {
      client.end()
      await once(peer, 'end')
      return Buffer.concat(chunks)
    },
    close: () => { client.destroy(); peer.destroy(); server.close() },
  }
}

describe('RunWriter', () => {
  it('writes adjacent frames of one chunk with a single write', async () => {
    const { writer, writes, received, close } = await socketPair()
    const chunk = Buffer.from('aaaabbbbcccc')
    writer.add(chunk, 0, 4)
    writer.add(chunk, 4, 8)
    writer.add(chunk, 8, 12)
    writer.flush()
    expect(writes).toHaveLength(1)
    expect((await received()).toString()).toBe('aaaabbbbcccc')
    close()
  })

  it('splits the run around a frame that was left out, keeping order', async () => {
    const { writer, writes, received, close } = await socketPair()
    const chunk = Buffer.from('aaaaXXXXcccc')
    writer.add(chunk, 0, 4)
    writer.add(chunk, 8, 12) // XXXX denied
    writer.write(Buffer.from('!'))
    writer.flush()
    expect(writes.map(String)).toEqual(['aaaa', 'cccc', '!'])
    expect((await received()).toString()).toBe('aaaacccc!')
    expect(writer.bytes).toBe(9)
    close()
  })

  it('never merges frames from different buffers', async () => {
    const { writer, writes, close } = await socketPair()
    writer.addFrame(Buffer.from('one'))
    writer.addFrame(Buffer.from('two'))
    writer.flush()
    expect(writes.map(String)).toEqual(['one', 'two'])
    close()
  })

  it('writes a run that is a whole chunk as the chunk itself, and a part of one as one view', async () => {
    const { writer, writes, close } = await socketPair()
    const whole = Buffer.from('aaaabbbb')
    writer.add(whole, 0, 4)
    writer.add(whole, 4, 8)
    writer.flush()
    const part = Buffer.from('ccccdddd')
    writer.add(part, 4, 8)
    writer.flush()
    expect(writes[0]).toBe(whole)
    expect(writes[1]!.toString()).toBe('dddd')
    expect(writes[1]!.buffer).toBe(part.buffer)
    close()
  })
})

/**
 * Runs in the lent read buffer (src/net/lent-reads.ts), relayed the way a session does: a socket
 * whose reads are lent, each read added as a run and flushed inside the callback, the buffer
 * poisoned after it (vitest.config.ts). A run that a write kept a view of would arrive as 0xee.
 */
async function lentRelay(sink: () => { writable: NodeJS.WritableStream & { write: (b: Buffer) => boolean }; writes: Buffer[] }, shape: 'whole' | 'split' | 'prefix' = 'whole'): Promise<{ source: net.Socket; writer: RunWriter; writes: Buffer[]; close: () => void }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const source = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [relayed] = (await once(server, 'connection')) as [net.Socket]
  const { writable, writes } = sink()
  const writer = new RunWriter()
  writer.attach(writable as never)
  const ok = lendReads(relayed, function (nread, buf) {
    if (shape === 'split' && nread > 1) {
      // Each read as two runs written one after the other (a frame left out between them).
      writer.add(buf, 0, nread >> 1)
      writer.flush()
      writer.add(buf, nread >> 1, nread)
    } else if (shape === 'prefix' && nread > 10) {
      // The first bytes in memory of their own (a frame assembled across reads), then the lent rest.
      writer.addFrame(Buffer.from(buf.subarray(0, 10)))
      writer.add(buf, 10, nread)
    } else {
      writer.add(buf, 0, nread)
    }
    if (!writer.flush()) {
      relayed.pause()
      ;(writable as unknown as net.Socket).once('drain', () => relayed.resume())
    }
    returnLent(nread)
  })
  expect(ok).toBe(true)
  return { source, writer, writes, close: () => { source.destroy(); relayed.destroy(); server.close() } }
}

/**
 * A TLS connection over loopback to write into (the client side, as Moat's broker side never is:
 * the writer cares only that the socket encrypts); `received()` ends it and returns what the far
 * end decrypted.
 */
async function tlsDestination(certs: TestCerts): Promise<{ socket: tls.TLSSocket; far: tls.TLSSocket; writes: Buffer[]; queued: boolean[]; received: () => Promise<Buffer>; close: () => void }> {
  const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const farSocket = once(server, 'secureConnection')
  const socket = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ca: readFileSync(certs.ca), servername: 'localhost' })
  await once(socket, 'secureConnect')
  const [far] = (await farSocket) as [tls.TLSSocket]
  const chunks: Buffer[] = []
  far.on('data', (c: Buffer) => chunks.push(c))
  const writes: Buffer[] = []
  // Whether something was queued in the socket when each write was made.
  const queued: boolean[] = []
  const write = socket.write.bind(socket)
  socket.write = ((data: Buffer) => { writes.push(data); queued.push(socket.writableLength > 0); return write(data) }) as typeof socket.write
  return {
    socket, far, writes, queued,
    received: async () => {
      socket.end()
      await once(far, 'end')
      return Buffer.concat(chunks)
    },
    close: () => { socket.destroy(); far.destroy(); server.close() },
  }
}

/** A loopback connection to write into; `received()` ends it and returns what the far end got. */
async function destination(): Promise<{ socket: net.Socket; far: net.Socket; writes: Buffer[]; received: () => Promise<Buffer>; close: () => void }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [far] = (await once(server, 'connection')) as [net.Socket]
  await new Promise((r) => (socket.connecting ? socket.once('connect', r) : r(null)))
  const chunks: Buffer[] = []
  far.on('data', (c: Buffer) => chunks.push(c))
  const writes: Buffer[] = []
  const write = socket.write.bind(socket)
  socket.write = ((data: Buffer) => { writes.push(data); return write(data) }) as typeof socket.write
  return {
    socket, far, writes,
    received: async () => {
      socket.end()
      await once(far, 'end')
      return Buffer.concat(chunks)
    },
    close: () => { socket.destroy(); far.destroy(); server.close() },
  }
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

describe('RunWriter with lent runs', () => {
  it('writes a lent run to the descriptor at once, not through the socket stream', async () => {
    const dest = await destination()
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }))
    const data = pattern(10_000, 1)
    relay.source.end(data)
    await once(relay.source, 'close')
    await new Promise((r) => setTimeout(r, 50))
    expect(dest.writes).toEqual([]) // every lent run went straight to the kernel
    expect((await dest.received()).equals(data)).toBe(true)
    expect(relay.writer.bytes).toBe(data.length)
    relay.close()
    dest.close()
  })

  it('writes a frame of its own memory and the lent run after it to the descriptor at once, in order', async () => {
    const dest = await destination()
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }), 'prefix')
    const data = pattern(300_000, 4)
    relay.source.end(data)
    await once(relay.source, 'close')
    await new Promise((r) => setTimeout(r, 50))
    expect(dest.writes).toEqual([]) // each pair went to the kernel in one writev
    expect((await dest.received()).equals(data)).toBe(true)
    expect(relay.writer.bytes).toBe(data.length)
    relay.close()
    dest.close()
  })

  it('writes copies once the kernel is full and behind a queue, and delivers every byte in order', async () => {
    const dest = await destination()
    dest.far.pause() // the far end stops reading: the kernel's buffers fill, then the socket's queue
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }))
    const data = pattern(16 * 1024 * 1024, 7)
    relay.source.write(data)
    await vi.waitFor(() => expect(dest.writes.length).toBeGreaterThan(0), { timeout: 10_000 })
    for (const w of dest.writes) expect(isLent(w)).toBe(false) // copies, never a view of the lent buffer
    dest.far.resume()
    relay.source.end()
    await once(relay.source, 'close')
    await vi.waitFor(() => expect(dest.socket.writableLength).toBe(0), { timeout: 10_000 })
    const got = await dest.received()
    expect(got.length).toBe(data.length)
    expect(got.equals(data)).toBe(true)
    relay.close()
    dest.close()
  })

  it('writes a lent run to a stream without a descriptor (TLS, WebSocket) as a copy', async () => {
    const out = new PassThrough()
    const writes: Buffer[] = []
    out.on('data', (c: Buffer) => writes.push(c))
    const relay = await lentRelay(() => ({ writable: out as never, writes }))
    const data = pattern(5000, 3)
    relay.source.end(data)
    await once(relay.source, 'close')
    await vi.waitFor(() => expect(Buffer.concat(writes).length).toBe(data.length))
    expect(Buffer.concat(writes).equals(data)).toBe(true)
    relay.close()
  })
})

describe('RunWriter with lent runs to a TLS socket', () => {
  let certs: TestCerts
  beforeAll(() => { certs = makeTestCerts([]) })
  afterAll(() => certs.cleanup())

  it('hands a lent run to the TLS socket without a copy when nothing is queued: it is encrypted at once', async () => {
    const dest = await tlsDestination(certs)
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }))
    const data = pattern(200_000, 5)
    relay.source.end(data)
    await once(relay.source, 'close')
    await vi.waitFor(() => expect(dest.socket.writableLength).toBe(0))
    // Views of the lent buffer went in, and the bytes that came out are the ones read, although the
    // buffer was poisoned after every read: nothing kept them past the write.
    expect(dest.writes.some((w) => isLent(w))).toBe(true)
    const got = await dest.received()
    expect(got.equals(data)).toBe(true)
    relay.close()
    dest.close()
  })

  it('hands a frame of its own memory and the lent run after it to the TLS socket together, without a copy', async () => {
    const dest = await tlsDestination(certs)
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }), 'prefix')
    const data = pattern(300_000, 6)
    relay.source.end(data)
    await once(relay.source, 'close')
    await vi.waitFor(() => expect(dest.socket.writableLength).toBe(0))
    expect(dest.writes.some((w) => isLent(w))).toBe(true)
    expect((await dest.received()).equals(data)).toBe(true)
    relay.close()
    dest.close()
  })

  it('writes copies to a TLS socket with a write in flight, and delivers every byte in order', async () => {
    const dest = await tlsDestination(certs)
    // Two runs per read: the second is written while the TLS socket still holds the first.
    const relay = await lentRelay(() => ({ writable: dest.socket, writes: dest.writes }), 'split')
    const data = pattern(4 * 1024 * 1024, 9)
    relay.source.end(data)
    await once(relay.source, 'close')
    expect(dest.queued.filter((q) => q).length).toBeGreaterThan(0)
    await vi.waitFor(() => expect(dest.socket.writableLength).toBe(0), { timeout: 10_000 })
    const got = await dest.received()
    expect(got.length).toBe(data.length)
    expect(got.equals(data)).toBe(true)
    // Every write made while a queue stood was a copy, never a view of the lent buffer.
    dest.writes.forEach((w, i) => { if (dest.queued[i]) expect(isLent(w)).toBe(false) })
    relay.close()
    dest.close()
  })
})
