/**
 * Client faults, against a real Mosquitto behind Moat:
 *
 * - a client that sends and then half-closes (ends its write side, FIN) mid-session: everything it
 *   sent reaches the broker, the session ends as an abnormal close (the will is published);
 * - the same with CONNECT, PUBLISH and FIN pipelined before Moat has even dialled the broker:
 *   the broker gets what the client sent, as it would directly;
 * - a client that resets (RST) half-way through a PUBLISH: the broker gets no partial packet,
 *   the session is counted and gone, and other clients carry on;
 * - an auth backend that hangs under a crowd of logins: each is refused when auth.timeout is up,
 *   nothing reaches the broker, a client already in keeps round-tripping, and logins work again
 *   as soon as the backend answers.
 */
import { once } from 'node:events'
import net from 'node:net'
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { AuthService, json, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const hasMosquitto = brokerKinds().includes('mosquitto')

function publish(topic: string, n: number, size = 16): Buffer {
  const payload = Buffer.alloc(size, 0x61)
  payload.writeUInt32BE(n, 0)
  return generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false })
}

describe.runIf(hasMosquitto)('client faults (mosquitto)', () => {
  let broker: TestBroker
  let moat: Moat
  beforeAll(async () => {
    broker = await startBroker('mosquitto')
    moat = await startMoat(broker)
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('a client that half-closes after sending: all of it reaches the broker, the session ends abnormally (will published)', async () => {
    const willTopic = uid('will')
    const watcher = await connect(broker.port)
    const inbox = new Inbox(watcher)
    await watcher.subscribeAsync(willTopic)
    const id = uid('halfclose')
    const topic = uid('hc')
    // A session with a will, then 50 publishes, then FIN (no DISCONNECT).
    const client = net.connect(moat.address().port, '127.0.0.1')
    await once(client, 'connect')
    client.write(generate(connectPacket(id, 4, { will: { topic: willTopic, payload: Buffer.from('gone'), qos: 0, retain: false } })))
    await once(client, 'data') // CONNACK
    const closed = once(client, 'close')
    for (let n = 0; n < 50; n++) client.write(publish(topic, n))
    client.end()
    await broker.clientGone(id)
    expect(broker.received(id)).toEqual(['connect', ...Array.from({ length: 50 }, () => `publish ${topic}`)])
    expect(String((await inbox.waitForTopic(willTopic)).payload)).toBe('gone')
    await closed
    await expect.poll(() => moat.sessionInfo().some((s) => s.clientId === id)).toBe(false)
    await watcher.endAsync()
  })

  for (const target of ['direct', 'moat'] as const) {
    it(`${target}: CONNECT, PUBLISH and FIN in one go (before the broker connection is up) still deliver the publish`, async () => {
      const port = target === 'direct' ? broker.port : moat.address().port
      const topic = uid('pipelined')
      const watcher = await connect(broker.port)
      const inbox = new Inbox(watcher)
      await watcher.subscribeAsync(topic)
      const id = uid('pipe')
      const client = net.connect(port, '127.0.0.1')
      await once(client, 'connect')
      client.end(Buffer.concat([generate(connectPacket(id, 4)), publish(topic, 7)]))
      client.resume()
      const got = await inbox.waitForTopic(topic)
      expect(got.payload.readUInt32BE(0)).toBe(7)
      await broker.clientGone(id)
      expect(broker.received(id)).toEqual(['connect', `publish ${topic}`])
      await watcher.endAsync()
    })
  }

  it('a client reset half-way through a PUBLISH: the broker gets nothing partial; counted; other clients carry on', async () => {
    const port = moat.address().port
    const topic = uid('steady')
    const other = await connect(port)
    const inbox = new Inbox(other)
    await other.subscribeAsync(topic, { qos: 1 })
    await other.publishAsync(topic, 'before', { qos: 1 })
    await inbox.waitFor(1)

    const id = uid('reset')
    const raw = await rawSession(port, id)
    const big = publish(uid('partial'), 1, 256 * 1024)
    raw.send(big.subarray(0, big.length / 2))
    await expect.poll(() => moat.sessionInfo().find((s) => s.clientId === id)?.clientReadBuffer ?? 0).toBeGreaterThan(0)
    const closedBefore = moat.stats.closedFor('client_error') + moat.stats.closedFor('client_closed')
    raw.socket.resetAndDestroy()
    await broker.clientGone(id)
    expect(broker.received(id)).toEqual(['connect'])
    expect(broker.logs!().some((l) => l.includes(id) && /malformed|protocol error/i.test(l))).toBe(false)
    await expect.poll(() => moat.stats.closedFor('client_error') + moat.stats.closedFor('client_closed')).toBe(closedBefore + 1)
    await expect.poll(() => moat.sessionInfo().some((s) => s.clientId === id)).toBe(false)

    await other.publishAsync(topic, 'after', { qos: 1 })
    expect((await inbox.waitFor(2)).map((m) => String(m.payload))).toEqual(['before', 'after'])
    await other.endAsync()
  })
})

describe(`an auth backend that hangs (${brokerKinds()[0]})`, () => {
  let broker: TestBroker
  let service: AuthService
  let moat: Moat
  let hanging = false

  beforeAll(async () => {
    broker = await startBroker(brokerKinds()[0]!)
    service = await AuthService.start((body, res) => {
      if (hanging) return service.hold(res)
      json(res, 200, { result: body.password === 'right' ? 'allow' : 'deny' })
    })
    moat = await startMoat(broker, { auth: { timeout: '1500ms', backends: [{ type: 'http', url: service.url, timeout: '1500ms', cache: false }], lockout: false } })
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await service?.stop()
    await broker?.stop()
  })

  it('refuses a crowd of logins at auth.timeout (fail closed), lets nobody through, keeps a client that is in working, and recovers when the backend answers', async () => {
    const port = moat.address().port
    const topic = uid('honest')
    const honest = await connect(port, { username: 'honest', password: 'right' })
    const inbox = new Inbox(honest)
    await honest.subscribeAsync(topic, { qos: 1 })

    hanging = true
    const before = broker.connections()
    const crowd = Array.from({ length: 30 }, (_, i) => refused(port, { clientId: uid('crowd'), username: `crowd${i}`, password: 'right', version: i % 2 === 0 ? 4 : 5 }))
    // Meanwhile the client that is in keeps round-tripping.
    for (let n = 0; n < 5; n++) {
      await honest.publishAsync(topic, `tick ${n}`, { qos: 1 })
      await inbox.waitFor(n + 1)
    }
    const codes = await Promise.all(crowd)
    codes.forEach((code, i) => expect(code).toBe(i % 2 === 0 ? 5 : 0x87))
    expect(broker.connections()).toBe(before)
    expect(moat.stats.auth.errorsOf('http', 'timeout')).toBe(30)
    await expect.poll(() => moat.sessionCount).toBe(1)

    // The backend answers again: the next login gets in at once (no connection left stuck).
    hanging = false
    service.release({ result: 'deny' })
    const again = await connect(port, { username: 'back', password: 'right' })
    await again.publishAsync(topic, 'back', { qos: 1 })
    expect(String((await inbox.waitForTopic(topic)).payload)).toMatch(/tick 0/)
    await inbox.waitFor(6)
    await again.endAsync()
    await honest.endAsync()
  })

  it('a client that pipelines CONNECT, PUBLISH, DISCONNECT and half-closes while its login is being checked: delivered once admitted', async () => {
    const id = uid('late')
    const topic = uid('late-topic')
    hanging = true
    const client = net.connect(moat.address().port, '127.0.0.1')
    await once(client, 'connect')
    client.resume()
    client.end(Buffer.concat([
      generate(connectPacket(id, 4, { username: 'late', password: Buffer.from('right') })),
      publish(topic, 1),
      generate({ cmd: 'disconnect' }),
    ]))
    await expect.poll(() => service.requests.some((r) => r.clientId === id)).toBe(true)
    hanging = false
    service.release({ result: 'allow' })
    await broker.clientGone(id)
    expect(broker.received(id)).toEqual(['connect', `publish ${topic}`, 'disconnect'])
    await expect.poll(() => moat.sessionInfo().some((s) => s.clientId === id)).toBe(false)
  })
})
