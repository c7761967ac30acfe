/**
 * Broker faults, against a real Mosquitto started, killed, frozen and restarted by the test:
 *
 * - down when Moat starts: each client is told "server unavailable" (3.1.1 CONNACK 3, 5.0 CONNACK
 *   0x88), /readyz says so, and every later client dials again, so once the broker is up new
 *   clients get in (and clients that retry on their own recover) without touching Moat;
 * - killed (SIGKILL) while clients publish: every client sees the close the broker made (no
 *   DISCONNECT the broker did not send, in either version), each counted and logged, and the
 *   clients get back in once the broker is back;
 * - frozen (SIGSTOP) while a client floods, then killed while frozen: Moat held a bounded amount
 *   for that session (the client was paused), and the session ends rather than hangs.
 *
 * (A broker that stops by itself and an idle session: upstream.test.ts. Frozen broker, then thawed,
 * everything delivered in order: backpressure.test.ts.)
 */
import { generate } from 'mqtt-packet'
import mqtt from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker } from '../helpers/broker.js'
import { connackCode, connect, Inbox, rawSession, shortId, uid } from '../helpers/clients.js'
import { capturingLogger } from '../helpers/listeners.js'
import { startMoat, testConfig, type MoatOverrides } from '../helpers/moat.js'
import { freePort, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function loggedMoat(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): Promise<{ moat: Moat; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = []
  const moat = new Moat(testConfig(upstream, overrides), { logger: capturingLogger(logs) })
  await moat.start()
  cleanups.push(() => moat.shutdown(0))
  return { moat, logs }
}

async function mosquittoOn(port?: number): Promise<MosquittoProcess> {
  const broker = await startMosquitto(port === undefined ? {} : { port })
  cleanups.push(() => broker.stop())
  return broker
}

async function readyz(moat: Moat): Promise<number> {
  const admin = moat.adminAddress()!
  const res = await fetch(`http://${admin.host}:${admin.port}/readyz`)
  await res.text()
  return res.status
}

const hasMosquitto = brokerKinds().includes('mosquitto')

describe.runIf(hasMosquitto)('broker faults (mosquitto)', () => {
  it('broker down when Moat starts: "server unavailable" per version, /readyz 503; once it is up, new clients get in and a retrying client recovers', async () => {
    const brokerPort = await freePort()
    const { moat } = await loggedMoat({ host: '127.0.0.1', port: brokerPort }, { admin: { host: '127.0.0.1', port: 0 } })
    const port = moat.address().port

    expect(await connackCode(port, 4)).toBe(3)
    expect(await connackCode(port, 5)).toBe(0x88)
    expect(await readyz(moat)).toBe(503)
    expect(moat.stats.upstreamConnectFailures).toBe(2)
    expect(moat.stats.closedFor('upstream_unavailable')).toBe(2)

    // A client that retries on its own (MQTT.js, reconnecting after a refusing CONNACK).
    const refusals: string[] = []
    const retrying = mqtt.connect({ host: '127.0.0.1', port, clientId: shortId(), reconnectPeriod: 100, reconnectOnConnackError: true, connectTimeout: 5000 })
    cleanups.push(() => { retrying.end(true) })
    retrying.on('error', (err) => refusals.push(err.message))
    await expect.poll(() => refusals.length, { timeout: 10_000 }).toBeGreaterThan(1)
    expect(refusals[0]).toMatch(/Server unavailable/i)
    expect(retrying.connected).toBe(false)

    // The broker comes up on the port Moat points at: nothing is done to Moat.
    const broker = await mosquittoOn(brokerPort)
    await expect.poll(() => readyz(moat), { timeout: 10_000 }).toBe(200)
    await expect.poll(() => retrying.connected, { timeout: 10_000 }).toBe(true)
    expect(await connackCode(port, 4)).toBe(0)
    expect(await connackCode(port, 5)).toBe(0)

    // And the recovered client really relays.
    const topic = uid('recovered')
    const inbox = new Inbox(retrying)
    await retrying.subscribeAsync(topic, { qos: 1 })
    const publisher = await connect(broker.port)
    await publisher.publishAsync(topic, 'after the outage', { qos: 1 })
    expect(String((await inbox.waitForTopic(topic)).payload)).toBe('after the outage')
    await publisher.endAsync()
  }, 30_000)

  it('broker killed while clients publish: each client closed as the broker closed, no invented DISCONNECT, counted and logged; they get back in when it returns', async () => {
    const broker = await mosquittoOn()
    const { moat, logs } = await loggedMoat(broker)
    const port = moat.address().port
    const topic = uid('stream')

    // A 3.1.1 and a 5.0 publisher streaming QoS 1, and a (QoS 0, so it need not acknowledge) subscriber, all through Moat.
    const subscriber = await rawSession(port, uid('sub'), 5)
    subscriber.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }], protocolVersion: 5, properties: {} } as never, { protocolVersion: 5 }))
    expect(await subscriber.nextPacket()).toMatchObject({ cmd: 'suback' })
    const publishers = await Promise.all(([4, 5] as const).map(async (version) => ({ version, raw: await rawSession(port, uid(`pub${version}`), version) })))
    let id = 0
    const pump = setInterval(() => {
      for (const { version, raw } of publishers) {
        if (!raw.isOpen) continue
        id = id % 65535 + 1
        raw.send(generate({ cmd: 'publish', topic, payload: Buffer.alloc(512, 7), qos: 1, messageId: id, retain: false, dup: false, ...(version === 5 ? { properties: {} } : {}) } as never, { protocolVersion: version }))
      }
    }, 2)
    cleanups.push(() => clearInterval(pump))
    // Traffic flows: deliveries reach the subscriber through Moat.
    await expect.poll(() => subscriber.packets.filter((p) => p.cmd === 'publish').length, { timeout: 10_000 }).toBeGreaterThan(20)

    await broker.kill()

    // Both versions: the connection just closes, as the killed broker's did (it sent no DISCONNECT).
    for (const raw of [subscriber, publishers[1]!.raw, publishers[0]!.raw]) {
      await raw.closed
      expect(raw.packets.filter((p) => p.cmd === 'disconnect')).toHaveLength(0)
    }
    await expect.poll(() => moat.sessionCount).toBe(0)
    expect(moat.stats.closedFor('upstream_closed') + moat.stats.closedFor('upstream_error')).toBe(3)
    expect(logs.filter((l) => l.event === 'upstream_gone')).toHaveLength(3)
    clearInterval(pump)

    // While it is down: refused, counted. When it returns on the same port: in again, relaying.
    expect(await connackCode(port, 5)).toBe(0x88)
    await broker.restart()
    const back = await connect(port, { protocolVersion: 5 })
    const inbox = new Inbox(back)
    await back.subscribeAsync(topic, { qos: 1 })
    await back.publishAsync(topic, 'back', { qos: 1 })
    expect(String((await inbox.waitForTopic(topic)).payload)).toBe('back')
    await back.endAsync()
  }, 30_000)

  it('broker frozen under a flood, then killed while frozen: the session held a bounded amount and ends; Moat serves the next broker', async () => {
    const broker = await mosquittoOn()
    const { moat } = await loggedMoat(broker)
    const port = moat.address().port
    const id = uid('flooder')
    const flooder = await rawSession(port, id, 5)
    broker.freeze()
    const frame = generate({ cmd: 'publish', topic: uid('flood'), payload: Buffer.alloc(64 * 1024, 1), qos: 0, retain: false, dup: false, properties: {} } as never, { protocolVersion: 5 })
    for (let n = 0; n < 300; n++) flooder.send(frame) // ~19 MiB at a broker that reads nothing
    const session = (): ReturnType<Moat['sessionInfo']>[number] | undefined => moat.sessionInfo().find((s) => s.clientId === id)
    await expect.poll(() => session()?.clientPaused, { timeout: 10_000 }).toBe(true)
    const held = session()!
    // What Moat buffers for it: below one socket high-water mark plus one chunk on each side.
    expect(held.brokerWriteBuffer + held.clientReadBuffer).toBeLessThan(1024 * 1024)

    await broker.kill()
    await flooder.closed
    expect(flooder.packets.filter((p) => p.cmd === 'disconnect')).toHaveLength(0)
    await expect.poll(() => moat.sessionCount).toBe(0)

    await broker.restart()
    const next = await connect(port)
    await next.publishAsync(uid('after'), 'ok', { qos: 1 })
    await next.endAsync()
  }, 30_000)
})

describe.runIf(hasMosquitto)('broker faults, a fresh Moat each (mosquitto)', () => {
  it('a broker restart under many clients leaves no session behind in Moat', async () => {
    const broker = await startBroker('mosquitto')
    cleanups.push(() => broker.stop())
    const moat = await startMoat(broker)
    cleanups.push(() => moat.shutdown(0))
    const clients = await Promise.all(Array.from({ length: 50 }, (_, i) => rawSession(moat.address().port, uid(`many${i}`), i % 2 === 0 ? 4 : 5)))
    expect(moat.sessionCount).toBe(50)
    await broker.terminate!()
    await Promise.all(clients.map((c) => c.closed))
    await expect.poll(() => moat.sessionCount).toBe(0)
    expect(moat.stats.sessionsOpen).toBe(0)
    // SIGTERM: Mosquitto 2.0 closes its sockets without a DISCONNECT, and so each client is closed:
    // nothing is added to what the broker sent.
    for (const c of clients) expect(c.packets.filter((p) => p.cmd === 'disconnect')).toHaveLength(0)
  }, 30_000)
})



