/**
 * PROXY protocol in (v1 and v2, before TLS and WebSocket) and out (v2 to the broker). The test
 * client plays the load balancer: it writes the header on a raw socket before the MQTT, TLS or
 * HTTP bytes. The address in the header is what the session, its log lines and its limits see;
 * a missing, malformed or untrusted header is refused and the broker sees nothing.
 */
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import { generate, parser as createParser, type Packet } from 'mqtt-packet'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ListenerConfig } from '../../src/config/types.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connectPacket, Inbox, connect, RawClient, shortId, uid } from '../helpers/clients.js'
import { configWith, listener, listenerTls, proxyV1, proxyV2, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'
import { limitsFrom } from '../helpers/moat.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['device-1'])
})
afterAll(() => certs.cleanup())

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const TRUST_LOOPBACK = { proxyProtocol: true, trustedProxies: ['127.0.0.1/32', '::1'] }

async function setup(listeners: ListenerConfig[], limits: { connectTimeoutMs?: number } = {}): Promise<{ broker: TestBroker; m: LoggedMoat }> {
  const broker = await startBroker('aedes')
  cleanups.push(() => broker.stop())
  const m = await startMoatWith(configWith(broker, listeners, { limits }))
  cleanups.push(() => m.moat.shutdown(0))
  return { broker, m }
}

/** Reads MQTT packets from any stream (raw TCP or TLS). */
function packets(stream: net.Socket): { next: () => Promise<Packet | null> } {
  const queue: Packet[] = []
  const waiters: Array<(p: Packet | null) => void> = []
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => { const w = waiters.shift(); if (w) w(p); else queue.push(p) })
  stream.on('data', (d: Buffer) => parser.parse(d))
  stream.on('close', () => { for (const w of waiters.splice(0)) w(null) })
  return { next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : stream.destroyed ? Promise.resolve(null) : new Promise((r) => waiters.push(r))) }
}

describe('PROXY protocol in', () => {
  it('limits count the address in the header: one connection per address lets two clients behind one balancer in, and refuses a second from the same client', async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const m = await startMoatWith(configWith(broker, [listener('lb', 'mqtt', TRUST_LOOPBACK)], { limits: limitsFrom({ connections: { perAddress: 1 } }) }))
    cleanups.push(() => m.moat.shutdown(0))
    const through = async (address: string, port: number): Promise<{ raw: RawClient; code: number }> => {
      const raw = new RawClient(m.moat.address('lb').port, 4)
      cleanups.push(() => raw.destroy())
      await raw.connected()
      raw.send(Buffer.concat([proxyV1(address, port), generate(connectPacket(shortId(), 4))]))
      const connack = await raw.nextPacket() as { returnCode: number }
      return { raw, code: connack.returnCode }
    }
    // All three come from 127.0.0.1 (the balancer); the header says who they are.
    expect((await through('203.0.113.7', 1001)).code).toBe(0)
    expect((await through('198.51.100.9', 1002)).code).toBe(0)
    const before = broker.connections()
    const again = await through('203.0.113.7', 1003)
    expect(again.code).toBe(3) // server unavailable: too many connections from that address
    await again.raw.closed
    expect(broker.connections()).toBe(before)
    expect(m.moat.stats.refusedFor('lb', 'too_many_connections')).toBe(1)
  })

  it('v1: the session, its log lines and its identity use the address in the header', async () => {
    const { broker, m } = await setup([listener('lb', 'mqtt', TRUST_LOOPBACK)])
    const clientId = shortId()
    const raw = new RawClient(m.moat.address('lb').port, 4)
    cleanups.push(() => raw.destroy())
    await raw.connected()
    raw.send(Buffer.concat([proxyV1('203.0.113.7', 45678), generate(connectPacket(clientId, 4))]))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(m.moat.sessionInfo()[0]!.remote).toBe('203.0.113.7:45678')
    await expect.poll(() => broker.received(clientId)).toContain('connect')
    raw.destroy()
    await expect.poll(() => m.logs.find((l) => l.event === 'session_end')).toBeDefined()
    const lines = m.logs.filter((l) => l.sid !== undefined)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line.remote).toBe('203.0.113.7:45678')
  })

  it('v2: the header may arrive in pieces, apart from the CONNECT', async () => {
    const { m } = await setup([listener('lb', 'mqtt', TRUST_LOOPBACK)])
    const raw = new RawClient(m.moat.address('lb').port, 4)
    cleanups.push(() => raw.destroy())
    await raw.connected()
    const header = proxyV2('198.51.100.23', 61000)
    raw.send(header.subarray(0, 10))
    await expect.poll(() => m.moat.stats.refusedFor('lb', 'proxy_header_invalid')).toBe(0)
    raw.send(header.subarray(10))
    raw.send(connectPacket(shortId(), 4))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(m.moat.sessionInfo()[0]!.remote).toBe('198.51.100.23:61000')
  })

  it('refuses a connection without a header; the broker sees nothing; /metrics counts it', async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const m = await startMoatWith(configWith(broker, [listener('lb', 'mqtt', TRUST_LOOPBACK)], { admin: { host: '127.0.0.1', port: 0 } }))
    cleanups.push(() => m.moat.shutdown(0))
    const raw = new RawClient(m.moat.address('lb').port, 4)
    await raw.connected()
    raw.send(connectPacket(shortId(), 4))
    expect(await raw.nextPacket()).toBeNull()
    await raw.closed
    expect(m.moat.stats.refusedFor('lb', 'proxy_header_invalid')).toBe(1)
    expect(m.moat.sessionCount).toBe(0)
    expect(broker.connections()).toBe(0)
    expect(m.logs.find((l) => l.event === 'connection_refused')).toMatchObject({ reason: 'proxy_header_invalid', detail: 'no PROXY protocol header' })
    const admin = m.moat.adminAddress()!
    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text()
    expect(text).toContain('moat_connections_refused_total{listener="lb",reason="proxy_header_invalid"} 1')
  })

  it('refuses a header from a source outside trustedProxies; the broker sees nothing', async () => {
    const { broker, m } = await setup([listener('lb', 'mqtt', { proxyProtocol: true, trustedProxies: ['10.0.0.0/8'] })])
    const raw = new RawClient(m.moat.address('lb').port, 4)
    await raw.connected()
    raw.send(Buffer.concat([proxyV1('203.0.113.7', 1), generate(connectPacket(shortId(), 4))]))
    expect(await raw.nextPacket()).toBeNull()
    expect(m.moat.stats.refusedFor('lb', 'proxy_untrusted')).toBe(1)
    expect(broker.connections()).toBe(0)
  })

  it('closes a connection whose header never completes, after connectTimeout', async () => {
    const { broker, m } = await setup([listener('lb', 'mqtt', TRUST_LOOPBACK)], { connectTimeoutMs: 300 })
    const raw = new RawClient(m.moat.address('lb').port, 4)
    await raw.connected()
    raw.send(Buffer.from('PROXY TCP4 203.0.'))
    await raw.closed
    expect(m.moat.stats.refusedFor('lb', 'handshake_timeout')).toBe(1)
    expect(broker.connections()).toBe(0)
  })

  it('is read before TLS: mqtts behind a load balancer', async () => {
    const { m } = await setup([listener('lbtls', 'mqtts', { ...TRUST_LOOPBACK, tls: listenerTls(certs.server.cert, certs.server.key, { ca: certs.ca, clientCert: 'required' }) })])
    const socket = net.connect(m.moat.address('lbtls').port, '127.0.0.1')
    socket.write(proxyV2('192.0.2.44', 7000))
    const secure = tls.connect({ socket, ca: readFileSync(certs.ca), servername: 'localhost', cert: readFileSync(certs.clients['device-1']!.cert), key: readFileSync(certs.clients['device-1']!.key) })
    cleanups.push(() => { secure.destroy() })
    const incoming = packets(secure)
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', resolve); secure.once('error', reject) })
    secure.write(generate(connectPacket(shortId(), 4)))
    expect(await incoming.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(m.moat.sessionInfo()[0]).toMatchObject({ remote: '192.0.2.44:7000', transport: 'tls', certificate: { cn: 'device-1' } })
  })

  it('is read before the WebSocket upgrade: ws behind a load balancer', async () => {
    const { m } = await setup([listener('lbws', 'ws', TRUST_LOOPBACK)])
    const port = m.moat.address('lbws').port
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], {
      createConnection: () => {
        const s = net.connect(port, '127.0.0.1')
        s.write(proxyV1('203.0.113.99', 5555))
        return s
      },
    })
    cleanups.push(() => ws.terminate())
    await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const got: Buffer[] = []
    ws.on('message', (d: Buffer) => got.push(d))
    ws.send(generate(connectPacket(shortId(), 4)))
    await expect.poll(() => Buffer.concat(got).length).toBeGreaterThanOrEqual(4)
    expect([...Buffer.concat(got).subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00])
    expect(m.moat.sessionInfo()[0]).toMatchObject({ remote: '203.0.113.99:5555', transport: 'ws' })
  })
})

/**
 * A stand-in for a broker that reads PROXY v2 (as HAProxy-aware brokers do): it checks and records
 * the header, written out by hand from the spec here, then relays the rest to Aedes.
 */
async function proxyAwareBroker(broker: TestBroker): Promise<{ port: number; headers: Array<{ address: string; port: number; tlvs: Buffer }>; close: () => Promise<void> }> {
  const headers: Array<{ address: string; port: number; tlvs: Buffer }> = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    let buf = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d])
      if (buf.length < 16) return
      const len = buf.readUInt16BE(14)
      if (buf.length < 16 + len) return
      socket.off('data', onData)
      if (!buf.subarray(0, 12).equals(Buffer.from('0d0a0d0a000d0a515549540a', 'hex')) || buf[12] !== 0x21 || buf[13] !== 0x11) {
        socket.destroy()
        return
      }
      headers.push({ address: [...buf.subarray(16, 20)].join('.'), port: buf.readUInt16BE(24), tlvs: buf.subarray(28, 16 + len) })
      const upstream = net.connect(broker.port, broker.host)
      sockets.add(upstream)
      upstream.write(buf.subarray(16 + len))
      socket.pipe(upstream).pipe(socket)
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    headers,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('PROXY protocol v2 out', () => {
  it("tells the broker the client's real address, and for TLS clients the TLS version and certificate CN", async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const relay = await proxyAwareBroker(broker)
    cleanups.push(() => relay.close())
    const m = await startMoatWith(configWith({ host: '127.0.0.1', port: relay.port }, [
      listener('lb', 'mqtt', TRUST_LOOPBACK),
      listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, { ca: certs.ca, clientCert: 'required' }) }),
    ], { upstreamExtra: { proxyProtocol: 'v2' } }))
    cleanups.push(() => m.moat.shutdown(0))

    // Through the PROXY listener: the broker learns the address from the load balancer's header.
    const raw = new RawClient(m.moat.address('lb').port, 4)
    cleanups.push(() => raw.destroy())
    await raw.connected()
    raw.send(Buffer.concat([proxyV1('203.0.113.7', 45678), generate(connectPacket(shortId(), 4))]))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(relay.headers[0]).toMatchObject({ address: '203.0.113.7', port: 45678 })
    expect(relay.headers[0]!.tlvs.length).toBe(0)

    // Through mqtts with a client certificate: TLVs carry the TLS version and CN; messages flow.
    const topic = uid('pp/out')
    const client = await connect(m.moat.address('secure').port, {
      protocol: 'mqtts', ca: readFileSync(certs.ca),
      cert: readFileSync(certs.clients['device-1']!.cert), key: readFileSync(certs.clients['device-1']!.key),
    })
    cleanups.push(() => client.endAsync())
    const inbox = new Inbox(client)
    await client.subscribeAsync(topic)
    await client.publishAsync(topic, 'hi')
    await inbox.waitForTopic(topic)
    const second = relay.headers[1]!
    expect(second.address).toBe('127.0.0.1')
    const tlvs = second.tlvs
    expect(tlvs[0]).toBe(0x20) // PP2_TYPE_SSL
    const body = tlvs.subarray(3 + 5) // type, length, client bits, verify
    const version = body.subarray(3, 3 + body.readUInt16BE(1)).toString()
    expect(body[0]).toBe(0x21)
    expect(version).toMatch(/^TLSv1\.[23]$/)
    const cn = body.subarray(3 + body.readUInt16BE(1))
    expect(cn[0]).toBe(0x22)
    expect(cn.subarray(3, 3 + cn.readUInt16BE(1)).toString()).toBe('device-1')
  })
})
