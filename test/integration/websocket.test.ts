/**
 * ws and wss listeners: MQTT over WebSocket with the `mqtt` subprotocol, the same Framer fed from
 * WebSocket messages (a packet split over two messages, two packets in one message), and the HTTP
 * refusals (path, Origin, subprotocol) with the broker seeing nothing.
 */
import { readFileSync } from 'node:fs'
import { generate } from 'mqtt-packet'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connectPacket, Inbox, connect, shortId, uid } from '../helpers/clients.js'
import { configWith, listener, listenerTls, startMoatWith, tryConnect, type LoggedMoat } from '../helpers/listeners.js'
import type { ListenerConfig } from '../../src/config/types.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['device-1'])
})
afterAll(() => certs.cleanup())

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function setup(kind: TestBroker['kind'], extra: Partial<ListenerConfig> = {}, protocol: 'ws' | 'wss' = 'ws'): Promise<{ broker: TestBroker; m: LoggedMoat; port: number }> {
  const broker = await startBroker(kind)
  cleanups.push(() => broker.stop())
  const tls = protocol === 'wss' ? { tls: listenerTls(certs.server.cert, certs.server.key) } : {}
  const m = await startMoatWith(configWith(broker, [listener('web', protocol, { ...tls, ...extra })]))
  cleanups.push(() => m.moat.shutdown(0))
  return { broker, m, port: m.moat.address('web').port }
}

/** A raw WebSocket client: resolves once open, or with the HTTP status of a refused upgrade. */
function openWs(url: string, protocols: string[], options: WebSocket.ClientOptions = {}): Promise<{ ws: WebSocket; status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options)
    ws.once('open', () => resolve({ ws, status: 101 }))
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ws, status: res.statusCode ?? 0 })
      res.resume()
      ws.terminate()
    })
    ws.once('error', reject)
  })
}

/** Collects binary messages from the raw WebSocket as one byte stream. */
function collect(ws: WebSocket): { bytes: () => Buffer; closed: Promise<void> } {
  const chunks: Buffer[] = []
  ws.on('message', (data: Buffer) => chunks.push(data))
  return { bytes: () => Buffer.concat(chunks), closed: new Promise((resolve) => ws.once('close', () => resolve())) }
}

for (const kind of brokerKinds()) {
  describe(`ws (${kind})`, () => {
    it('MQTT.js over ws passes messages both ways', async () => {
      const { broker, m, port } = await setup(kind)
      const up = uid('ws/up')
      const down = uid('ws/down')
      const direct = await connect(broker.port)
      cleanups.push(() => direct.endAsync())
      const directInbox = new Inbox(direct)
      await direct.subscribeAsync(up, { qos: 1 })
      const { outcome, client } = await tryConnect(`ws://127.0.0.1:${port}/mqtt`)
      cleanups.push(() => client.endAsync())
      expect(outcome).toBe('connected')
      const inbox = new Inbox(client)
      await client.subscribeAsync(down, { qos: 1 })
      await client.publishAsync(up, 'over ws', { qos: 1 })
      expect((await directInbox.waitForTopic(up)).payload.toString()).toBe('over ws')
      await direct.publishAsync(down, 'back over ws', { qos: 1 })
      expect((await inbox.waitForTopic(down)).payload.toString()).toBe('back over ws')
      expect(m.moat.sessionInfo()[0]).toMatchObject({ transport: 'ws', tlsVersion: null })
    })

    it('a packet split over two messages and two packets in one message both pass', async () => {
      const { broker, port } = await setup(kind)
      const clientId = shortId()
      const topic = uid('ws/frames')
      const direct = await connect(broker.port)
      cleanups.push(() => direct.endAsync())
      const directInbox = new Inbox(direct)
      await direct.subscribeAsync(`${topic}/#`, { qos: 0 })

      const { ws, status } = await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
      expect(status).toBe(101)
      expect(ws.protocol).toBe('mqtt')
      cleanups.push(() => ws.terminate())
      const received = collect(ws)
      const connectBytes = generate(connectPacket(clientId, 4))
      ws.send(connectBytes.subarray(0, 5))
      ws.send(connectBytes.subarray(5))
      await expect.poll(() => received.bytes().length).toBeGreaterThanOrEqual(4)
      expect([...received.bytes().subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]) // CONNACK, accepted

      const one = generate({ cmd: 'publish', topic: `${topic}/one`, payload: Buffer.from('1'), qos: 0, retain: false, dup: false })
      const two = generate({ cmd: 'publish', topic: `${topic}/two`, payload: Buffer.from('2'), qos: 0, retain: false, dup: false })
      ws.send(Buffer.concat([one, two]))
      // And one more packet split mid-topic across messages.
      const three = generate({ cmd: 'publish', topic: `${topic}/three`, payload: Buffer.from('3'), qos: 0, retain: false, dup: false })
      ws.send(three.subarray(0, 7))
      ws.send(three.subarray(7))
      await directInbox.waitFor(3)
      expect(directInbox.messages.map((msg) => msg.topic)).toEqual([`${topic}/one`, `${topic}/two`, `${topic}/three`])
      await expect.poll(() => broker.received(clientId)).toEqual(['connect', `publish ${topic}/one`, `publish ${topic}/two`, `publish ${topic}/three`])
    })
  })
}

describe('ws: HTTP refusals', () => {
  it('refuses a wrong subprotocol with 400 and no subprotocol with 400; the broker sees nothing', async () => {
    const { broker, m, port } = await setup('aedes')
    expect((await openWs(`ws://127.0.0.1:${port}/mqtt`, ['chat'])).status).toBe(400)
    expect((await openWs(`ws://127.0.0.1:${port}/mqtt`, [])).status).toBe(400)
    expect(m.moat.stats.refusedFor('web', 'ws_bad_subprotocol')).toBe(2)
    expect(m.moat.sessionCount).toBe(0)
    expect(broker.connections()).toBe(0)
  })

  it('accepts mqttv3.1 as the subprotocol', async () => {
    const { port } = await setup('aedes')
    const { ws, status } = await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqttv3.1'])
    expect(status).toBe(101)
    expect(ws.protocol).toBe('mqttv3.1')
    ws.terminate()
  })

  it('refuses an Origin outside the allow-list with 403; an allowed one passes', async () => {
    const { broker, m, port } = await setup('aedes', { origins: ['https://app.example.com'] })
    expect((await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], { origin: 'https://evil.example.com' })).status).toBe(403)
    expect((await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])).status).toBe(403) // no Origin at all
    expect(m.moat.stats.refusedFor('web', 'ws_bad_origin')).toBe(2)
    expect(broker.connections()).toBe(0)
    const { ws, status } = await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'], { origin: 'https://app.example.com' })
    expect(status).toBe(101)
    ws.terminate()
  })

  it('refuses another path with 404 and a plain HTTP request with 426', async () => {
    const { broker, m, port } = await setup('aedes', { path: '/custom' })
    expect((await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])).status).toBe(404)
    const res = await fetch(`http://127.0.0.1:${port}/custom`)
    expect(res.status).toBe(426)
    await res.text()
    expect(m.moat.stats.refusedFor('web', 'ws_bad_path')).toBe(1)
    expect(m.moat.stats.refusedFor('web', 'ws_not_upgrade')).toBe(1)
    expect((await openWs(`ws://127.0.0.1:${port}/custom`, ['mqtt'])).status).toBe(101)
    expect(broker.connections()).toBe(0)
  })

  it('closes a client that sends a text message; the broker gets nothing from it', async () => {
    const { broker, m, port } = await setup('aedes')
    const { ws } = await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
    const received = collect(ws)
    ws.send(generate(connectPacket(shortId(), 4)).toString('latin1'))
    await received.closed
    expect(broker.connections()).toBe(0)
    await expect.poll(() => m.moat.sessionCount).toBe(0)
  })

  it('refuses a message larger than maxPacketSize and closes the client', async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const m = await startMoatWith(configWith(broker, [listener('web', 'ws')], { limits: { maxPacketSize: 1024 } }))
    cleanups.push(() => m.moat.shutdown(0))
    const { ws } = await openWs(`ws://127.0.0.1:${m.moat.address('web').port}/mqtt`, ['mqtt'])
    const received = collect(ws)
    ws.send(Buffer.alloc(4096, 0x30))
    await received.closed
    expect(broker.connections()).toBe(0)
  })
})

describe('ws: keepalive', () => {
  it('pings every client; one that does not answer is closed, one that answers stays', async () => {
    const { broker, m, port } = await setup('aedes', { pingIntervalMs: 150 })
    const url = `ws://127.0.0.1:${port}/mqtt`
    const live = await openWs(url, ['mqtt'])
    cleanups.push(() => live.ws.terminate())
    let pings = 0
    live.ws.on('ping', () => { pings++ })
    const mute = await openWs(url, ['mqtt'], { autoPong: false })
    const muteClosed = collect(mute.ws).closed
    // Both are MQTT sessions first.
    for (const ws of [live.ws, mute.ws]) ws.send(generate(connectPacket(shortId(), 4)))
    await expect.poll(() => m.moat.sessionInfo().filter((s) => s.clientId !== '').length).toBe(2)
    await muteClosed
    expect(live.ws.readyState).toBe(WebSocket.OPEN)
    expect(pings).toBeGreaterThanOrEqual(1)
    await expect.poll(() => m.moat.sessionCount).toBe(1)
    expect(broker.connections()).toBe(2)
  })
})

describe('wss', () => {
  it('MQTT.js over wss passes messages both ways', async () => {
    const { broker, m, port } = await setup('aedes', {}, 'wss')
    const topic = uid('wss/up')
    const down = uid('wss/down')
    const direct = await connect(broker.port)
    cleanups.push(() => direct.endAsync())
    const directInbox = new Inbox(direct)
    await direct.subscribeAsync(topic, { qos: 1 })
    const { outcome, client, error } = await tryConnect(`wss://localhost:${port}/mqtt`, { ca: readFileSync(certs.ca) })
    cleanups.push(() => client.endAsync())
    expect(error).toBeUndefined()
    expect(outcome).toBe('connected')
    const inbox = new Inbox(client)
    await client.subscribeAsync(down, { qos: 1 })
    await client.publishAsync(topic, 'over wss', { qos: 1 })
    expect((await directInbox.waitForTopic(topic)).payload.toString()).toBe('over wss')
    await direct.publishAsync(down, 'back over wss', { qos: 1 })
    expect((await inbox.waitForTopic(down)).payload.toString()).toBe('back over wss')
    expect(m.moat.sessionInfo()[0]!.transport).toBe('wss')
  })

  it('with clientCert: required, a verified certificate becomes the identity; no certificate is refused before HTTP', async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const m = await startMoatWith(configWith(broker, [listener('web', 'wss', { tls: listenerTls(certs.server.cert, certs.server.key, { ca: certs.ca, clientCert: 'required' }) })]))
    cleanups.push(() => m.moat.shutdown(0))
    const url = `wss://localhost:${m.moat.address('web').port}/mqtt`
    const refused = await tryConnect(url, { ca: readFileSync(certs.ca) })
    expect(refused.outcome).not.toBe('connected')
    await expect.poll(() => m.moat.stats.refusedFor('web', 'client_cert_refused')).toBe(1)
    expect(broker.connections()).toBe(0)

    const ok = await tryConnect(url, { ca: readFileSync(certs.ca), cert: readFileSync(certs.clients['device-1']!.cert), key: readFileSync(certs.clients['device-1']!.key) })
    cleanups.push(() => ok.client.endAsync())
    expect(ok.outcome).toBe('connected')
    expect(m.moat.sessionInfo()[0]!.certificate).toMatchObject({ cn: 'device-1', sans: ['DNS:device-1'] })
  })
})

describe('ws: backpressure', () => {
  const MESSAGES = 200
  const SIZE = 64 * 1024 // about 12.5 MiB pushed at one WebSocket session
  const BOUND = 1024 * 1024

  it('pauses reading from the broker while a WebSocket client does not read, then delivers everything in order', async () => {
    const { broker, m, port } = await setup('aedes')
    const topic = uid('ws/slow')
    const clientId = shortId()
    const { ws } = await openWs(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
    cleanups.push(() => ws.terminate())
    const received = collect(ws)
    ws.send(generate(connectPacket(clientId, 4)))
    ws.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }))
    await expect.poll(() => received.bytes().length).toBe(4 + 5) // CONNACK + SUBACK
    ws.pause() // the client stops reading its socket

    const publisher = await connect(broker.port)
    cleanups.push(() => publisher.endAsync())
    for (let n = 0; n < MESSAGES; n++) {
      const payload = Buffer.alloc(SIZE, n % 251)
      payload.writeUInt32BE(n, 0)
      publisher.publish(topic, payload)
    }
    const session = (): ReturnType<LoggedMoat['moat']['sessionInfo']>[number] => m.moat.sessionInfo().find((s) => s.clientId === clientId)!
    await expect.poll(() => session().brokerPaused, { timeout: 10_000 }).toBe(true)
    expect(session().clientWriteBuffer).toBeLessThan(BOUND)
    expect(session().brokerReadBuffer).toBeLessThan(BOUND)

    ws.resume()
    const parser = (await import('mqtt-packet')).parser({ protocolVersion: 4 })
    const payloads: Buffer[] = []
    parser.on('packet', (p) => { if (p.cmd === 'publish') payloads.push(p.payload as Buffer) })
    await expect.poll(() => received.bytes().length, { timeout: 20_000 }).toBeGreaterThanOrEqual(9 + MESSAGES * (SIZE + 2 + 2 + Buffer.byteLength(topic) + 2))
    parser.parse(received.bytes())
    expect(payloads).toHaveLength(MESSAGES)
    payloads.forEach((payload, n) => expect(payload.readUInt32BE(0)).toBe(n))
  }, 60_000)
})
