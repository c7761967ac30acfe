/**
 * Lent reads on real loopback sockets: bytes arrive through the callback in order, the socket's
 * own life (pause, resume, 'end', 'close') is unchanged, what cannot lend (TLS, bytes already
 * buffered, a 'data' listener) is left alone, and the test-time poisoning really overwrites.
 */
import net from 'node:net'
import tls from 'node:tls'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { isLent, lendReads, lentReadsAvailable, ownedCopy, poisonLentReads, returnLent, socketFd } from '../../../src/net/lent-reads.js'
import { makeTestCerts } from '../../helpers/certs.js'

interface Pair {
  readonly client: net.Socket
  readonly accepted: net.Socket
  close(): void
}

async function pair(): Promise<Pair> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [accepted] = (await once(server, 'connection')) as [net.Socket]
  await once(client, 'connect').catch(() => undefined)
  return { client, accepted, close: () => { client.destroy(); accepted.destroy(); server.close() } }
}

/** Lends the socket's reads; each read's bytes are copied out inside the callback, as the contract says. */
function collect(socket: net.Socket): { reads: Buffer[]; bytes: () => Buffer; lent: boolean[] } {
  const reads: Buffer[] = []
  const lent: boolean[] = []
  const ok = lendReads(socket, function (nread, buf) {
    lent.push(isLent(buf) && isLent(buf.subarray(0, nread)))
    reads.push(Buffer.from(buf.subarray(0, nread)))
  })
  expect(ok).toBe(true)
  return { reads, lent, bytes: () => Buffer.concat(reads) }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  await vi.waitFor(() => expect(check()).toBe(true), { timeout: ms, interval: 5 })
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

describe('lent reads', () => {
  it('are available on this Node (the fast path the bench figures assume)', () => {
    expect(lentReadsAvailable).toBe(true)
  })

  it('hand an accepted socket its bytes through the callback, in order, and keep end and close', async () => {
    const p = await pair()
    cleanups.push(p.close)
    const got = collect(p.accepted)
    const sent: Buffer[] = []
    for (let i = 0; i < 200; i++) {
      const b = Buffer.alloc(100 + i, i)
      sent.push(b)
      p.client.write(b)
    }
    p.client.end()
    await once(p.accepted, 'end')
    expect(got.bytes().equals(Buffer.concat(sent))).toBe(true)
    expect(got.lent.every(Boolean)).toBe(true)
    expect(p.accepted.listenerCount('data')).toBe(0)
    p.accepted.end()
    await once(p.accepted, 'close')
  })

  it('work on a socket this process dialled, from before it connects', async () => {
    const server = net.createServer((s) => s.end(Buffer.from('hello from the broker')))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => server.close())
    const dialled = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    const got = collect(dialled)
    await once(dialled, 'end')
    expect(got.bytes().toString()).toBe('hello from the broker')
    dialled.destroy()
  })

  it('stop while the socket is paused and go on after resume(), losing nothing', async () => {
    const p = await pair()
    cleanups.push(p.close)
    const got = collect(p.accepted)
    p.client.write('one')
    await until(() => got.bytes().toString() === 'one')
    p.accepted.pause()
    p.client.write('two')
    // What the kernel holds for the paused socket is not read: the client's bytes wait there.
    await new Promise((r) => setTimeout(r, 100))
    expect(got.bytes().toString()).toBe('one')
    p.accepted.resume()
    await until(() => got.bytes().toString() === 'onetwo')
  })

  it('serve a TLS socket: its decrypted bytes arrive in the lent buffer (no descriptor for immediate writes)', async () => {
    const certs = makeTestCerts([])
    cleanups.push(() => certs.cleanup())
    const reads: string[] = []
    let lent = false
    let accepted: tls.TLSSocket | null = null
    const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key) }, (s) => {
      accepted = s
      lent = lendReads(s, function (nread, buf) {
        expect(isLent(buf)).toBe(true)
        reads.push(buf.toString('latin1', 0, nread))
        returnLent(nread)
      })
      expect(socketFd(s)).toBe(-1)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => server.close())
    const secure = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ca: readFileSync(certs.ca) })
    await once(secure, 'secureConnect')
    secure.write('first')
    await vi.waitFor(() => expect(reads.join('')).toBe('first'))
    secure.write('second')
    await vi.waitFor(() => expect(reads.join('')).toBe('firstsecond'))
    expect(lent).toBe(true)
    expect(accepted!.listenerCount('data')).toBe(0)
    secure.destroy()
  })

  it('are refused for a socket with a data listener or bytes already buffered', async () => {
    const p = await pair()
    cleanups.push(p.close)
    p.accepted.on('data', () => undefined)
    expect(lendReads(p.accepted, () => undefined)).toBe(false)

    const q = await pair()
    cleanups.push(q.close)
    q.accepted.pause()
    q.accepted.unshift(Buffer.from('put back'))
    expect(lendReads(q.accepted, () => undefined)).toBe(false)
  })

  it('give the descriptor of a connected plain socket for immediate writes', async () => {
    const p = await pair()
    cleanups.push(p.close)
    expect(socketFd(p.client)).toBeGreaterThan(2)
    expect(socketFd(p.accepted)).toBeGreaterThan(2)
    expect(socketFd({})).toBe(-1)
  })

  it('overwrite the lent bytes after each callback when poisoned (as in this suite)', async () => {
    expect(poisonLentReads).toBe(true) // vitest.config.ts sets MOAT_POISON_LENT_READS=1
    const p = await pair()
    cleanups.push(p.close)
    let kept: Buffer | null = null
    let copy: Buffer | null = null
    lendReads(p.accepted, function (nread, buf) {
      kept = buf.subarray(0, nread) // the mistake the poisoning is there to catch
      copy = ownedCopy(buf, 0, nread)
      returnLent(nread) // what the session's read callbacks end with
    })
    p.client.write('secret')
    await until(() => kept !== null)
    expect(kept!.toString()).not.toBe('secret')
    expect(kept!.every((b) => b === 0xee)).toBe(true)
    expect(copy!.toString()).toBe('secret')
    expect(isLent(copy!)).toBe(false)
  })
})

describe('ownedCopy', () => {
  it('copies nothing for a buffer that is not lent', () => {
    const b = Buffer.from('abcdef')
    expect(ownedCopy(b, 0, 6)).toBe(b)
    const view = ownedCopy(b, 1, 3)
    expect(view.toString()).toBe('bc')
    expect(view.buffer).toBe(b.buffer)
  })
})

describe('MOAT_LENT_READS=0', () => {
  afterAll(() => {
    vi.unstubAllEnvs()
    vi.resetModules()
  })

  it('turns lent reads off: every socket reads through data', async () => {
    vi.stubEnv('MOAT_LENT_READS', '0')
    vi.resetModules()
    const fresh = await import('../../../src/net/lent-reads.js')
    expect(fresh.lentReadsAvailable).toBe(false)
    const p = await pair()
    cleanups.push(p.close)
    expect(fresh.lendReads(p.accepted, () => undefined)).toBe(false)
    expect(fresh.socketFd(p.accepted)).toBe(-1)
  })
})
