/**
 * QoS 1 and 2 through Moat across a broker restart, with persistent sessions: Mosquitto keeps its
 * sessions and queued messages in a store (`persistence true`), is stopped (SIGTERM) in the middle
 * of a stream of publishes and started again on the same port with the same store. Publisher and
 * subscriber (both through Moat, both persistent, MQTT.js reconnecting on its own) go on.
 *
 * What must hold: every message the broker acknowledged (PUBACK / PUBCOMP reached the publisher)
 * reaches the subscriber; none is lost by Moat. QoS 1 may duplicate (counted and printed); QoS 2
 * arrives exactly once.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { afterEach, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { shortId, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const MESSAGES = 200
/** Publishes in flight at once (the publisher keeps this many unacknowledged). */
const WINDOW = 10

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** An MQTT.js client that keeps its session and reconnects by itself, also after a refusing CONNACK. */
function persistentClient(port: number, clientId: string, protocolVersion: 4 | 5): MqttClient {
  const client = mqtt.connect({
    host: '127.0.0.1',
    port,
    clientId,
    protocolVersion,
    clean: false,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    reconnectPeriod: 100,
    reconnectOnConnackError: true,
    connectTimeout: 5000,
    keepalive: 30,
  })
  client.on('error', () => { /* refusals while the broker is down are expected; the test judges outcomes */ })
  cleanups.push(() => { client.end(true) })
  return client
}

function connected(client: MqttClient): Promise<void> {
  if (client.connected) return Promise.resolve()
  return new Promise((resolve) => client.once('connect', () => resolve()))
}

const hasMosquitto = brokerKinds().includes('mosquitto')

describe.runIf(hasMosquitto)('persistent sessions across a broker restart (mosquitto, persistence true)', () => {
  for (const target of ['direct', 'moat'] as const) for (const protocolVersion of [4, 5] as const) {
    for (const qos of [1, 2] as const) {
      it(`${target}, MQTT ${protocolVersion === 5 ? '5.0' : '3.1.1'}, QoS ${qos}: every message the broker acknowledged reaches the subscriber${qos === 2 ? ' exactly once' : ''}`, async () => {
        const broker: TestBroker = await startBroker('mosquitto', { persistence: true })
        cleanups.push(() => broker.stop())
        const moat: Moat = await startMoat(broker)
        cleanups.push(() => moat.shutdown(0))
        // Directly to the broker (proving the test itself is right), and through Moat.
        const port = target === 'direct' ? broker.port : moat.address().port
        const topic = uid('persist')

        const subscriber = persistentClient(port, shortId(), protocolVersion)
        const received = new Map<number, number>()
        subscriber.on('message', (t, payload) => {
          if (t !== topic) return
          const n = payload.readUInt32BE(0)
          received.set(n, (received.get(n) ?? 0) + 1)
        })
        const resumed: boolean[] = []
        await connected(subscriber)
        subscriber.on('connect', (connack) => resumed.push(connack.sessionPresent))
        await subscriber.subscribeAsync(topic, { qos })

        const publisher = persistentClient(port, shortId(), protocolVersion)
        await connected(publisher)

        const acked = new Set<number>()
        let restarted: Promise<void> | null = null
        const restartBroker = async (): Promise<void> => {
          await broker.terminate!()
          // Clients see the broker gone through Moat, and retry against a broker that is down.
          await expect.poll(() => subscriber.connected || publisher.connected, { timeout: 10_000 }).toBe(false)
          if (target === 'moat') await expect.poll(() => moat.stats.upstreamConnectFailures, { timeout: 10_000 }).toBeGreaterThan(0)
          await broker.restart!()
        }
        const inFlight = new Set<Promise<void>>()
        for (let n = 0; n < MESSAGES; n++) {
          const payload = Buffer.alloc(8)
          payload.writeUInt32BE(n, 0)
          const p: Promise<void> = publisher.publishAsync(topic, payload, { qos }).then(() => { acked.add(n) }).finally(() => inFlight.delete(p))
          inFlight.add(p)
          if (inFlight.size >= WINDOW) await Promise.race(inFlight)
          // Halfway through, with publishes in flight, the broker goes down and comes back.
          if (restarted === null && acked.size >= MESSAGES / 2) restarted = restartBroker()
        }
        await restarted
        await Promise.all(inFlight)
        expect(acked.size).toBe(MESSAGES) // MQTT.js resends what was not acknowledged: all end acknowledged

        // Both went through the restart: Moat saw the broker go away under open sessions.
        if (target === 'moat') expect(moat.stats.closedFor('upstream_closed') + moat.stats.closedFor('upstream_error')).toBeGreaterThanOrEqual(2)
        // The restarted broker resumed the subscriber's session from its store (the subscriber may
        // reconnect after the publisher has finished: its retry timer runs on its own).
        await expect.poll(() => resumed.length, { timeout: 20_000 }).toBeGreaterThan(0)
        expect(resumed).toContain(true)
        await expect.poll(() => [...acked].filter((n) => !received.has(n)).length, { timeout: 20_000 }).toBe(0)
        const duplicates = [...received.values()].reduce((sum, count) => sum + count - 1, 0)
        console.log(`persistence ${target} MQTT ${protocolVersion === 5 ? '5.0' : '3.1.1'} QoS ${qos}: ${MESSAGES} published, ${acked.size} acknowledged, ${received.size} distinct received, ${duplicates} duplicates, ${target === 'moat' ? `${moat.stats.upstreamConnectFailures} refused dials while the broker was down` : 'direct'}`)
        if (qos === 2) expect(duplicates).toBe(0)
        expect([...received.keys()].every((n) => n >= 0 && n < MESSAGES)).toBe(true)
      }, 60_000)
    }
  }
})
