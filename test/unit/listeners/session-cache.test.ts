/**
 * The TLS 1.2 session-id cache: the sessions it keeps are real ones (serialized by OpenSSL in a
 * handshake over loopback), it keeps TLS 1.2 sessions only, and it stays within its bound whatever
 * is offered: at most `max` entries, none too large, none resumed past its lifetime.
 */
import { readFileSync } from 'node:fs'
import { constants } from 'node:crypto'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_SESSION_BYTES, SessionCache, sessionVersion } from '../../../src/listeners/session-cache.js'
import { makeTestCerts, type TestCerts } from '../../helpers/certs.js'

let certs: TestCerts
/** Real sessions, as Node's newSession hands them to a server: [id, data]. */
const sessions: Record<'TLSv1.2' | 'TLSv1.3', Array<[Buffer, Buffer]>> = { 'TLSv1.2': [], 'TLSv1.3': [] }

async function handshake(version: 'TLSv1.2' | 'TLSv1.3'): Promise<void> {
  const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key) }, (s) => s.end('x'))
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    sessions[version].push([id, data])
    done()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve, reject) => {
    // No ticket extension: a TLS 1.2 server then gives the session an id (with tickets it has none).
    const client = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca), servername: 'localhost', maxVersion: version, secureOptions: constants.SSL_OP_NO_TICKET })
    client.on('error', reject)
    client.on('close', () => resolve())
    client.resume()
  })
  server.close()
}

beforeAll(async () => {
  certs = makeTestCerts([])
  await handshake('TLSv1.2')
  await handshake('TLSv1.3')
})
afterAll(() => certs.cleanup())

function id(n: number): Buffer {
  return Buffer.alloc(32, n)
}

describe('sessionVersion', () => {
  it('reads the protocol version of a serialized session, and 0 from anything else', () => {
    expect(sessions['TLSv1.2'].length).toBeGreaterThan(0)
    expect(sessions['TLSv1.3'].length).toBeGreaterThan(0)
    for (const [, data] of sessions['TLSv1.2']) expect(sessionVersion(data)).toBe(0x0303)
    for (const [, data] of sessions['TLSv1.3']) expect(sessionVersion(data)).toBe(0x0304)
    expect(sessionVersion(Buffer.alloc(0))).toBe(0)
    expect(sessionVersion(Buffer.from('not a session at all'))).toBe(0)
    expect(sessionVersion(Buffer.from([0x30, 0x84, 0, 0, 0, 0, 2, 1, 1, 2, 2, 3, 3]))).toBe(0)
  })
})

describe('SessionCache', () => {
  it('keeps a TLS 1.2 session by its id, and never a TLS 1.3 one', () => {
    const cache = new SessionCache(10, 60_000)
    const [id12, data12] = sessions['TLSv1.2'][0]!
    cache.store(id12, data12)
    expect(cache.lookup(id12)).toBe(data12)
    for (const [id13, data13] of sessions['TLSv1.3']) cache.store(id13, data13)
    expect(cache.size).toBe(1)
  })

  it('holds at most max entries, dropping the oldest, and an unknown id adds nothing', () => {
    const data = sessions['TLSv1.2'][0]![1]
    const cache = new SessionCache(3, 60_000)
    for (let n = 1; n <= 5; n++) cache.store(id(n), data)
    expect(cache.size).toBe(3)
    expect(cache.lookup(id(1))).toBeNull()
    expect(cache.lookup(id(2))).toBeNull()
    expect(cache.lookup(id(5))).toBe(data)
    for (let n = 100; n < 200; n++) expect(cache.lookup(id(n))).toBeNull()
    expect(cache.size).toBe(3)
  })

  it('keeps no session above MAX_SESSION_BYTES, none with an empty id, none when max is 0', () => {
    const data = sessions['TLSv1.2'][0]![1]
    const big = Buffer.concat([data, Buffer.alloc(MAX_SESSION_BYTES)])
    const cache = new SessionCache(3, 60_000)
    cache.store(id(1), big)
    cache.store(Buffer.alloc(0), data)
    expect(cache.size).toBe(0)
    const off = new SessionCache(0, 60_000)
    off.store(id(1), data)
    expect(off.size).toBe(0)
  })

  it('resumes no session past its lifetime, and forgets it then', async () => {
    const data = sessions['TLSv1.2'][0]![1]
    const cache = new SessionCache(3, 50)
    cache.store(id(1), data)
    expect(cache.lookup(id(1))).toBe(data)
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(cache.lookup(id(1))).toBeNull()
    expect(cache.size).toBe(0)
  })
})
