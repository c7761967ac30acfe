/**
 * Backpressure, not memory: a peer that stops reading pauses the other side, so what Moat buffers
 * for a session stays bounded while megabytes are pushed at it, and nothing is lost once the slow
 * side reads again.
 */
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, rawSession, uid, type RawClient } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const MESSAGES = 300
const SIZE = 64 * 1024 // 300 × 64 KiB ≈ 19 MiB pushed at one session
/** What a session may hold in its own write buffer: the socket's high-water mark plus one read chunk. */
const BOUND = 1024 * 1024

function numbered(topic: string, n: number): Buffer {
  const payload = Buffer.alloc(SIZE, n % 251)
  payload.writeUInt32BE(n, 0)
  return generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false })
}

/** A raw client through Moat, subscribed to `topic` (QoS 0), that has stopped reading. */
async function stalledSubscriber(port: number, id: string, topic: string): Promise<RawClient> {
  const slow = await rawSession(port, id)
  slow.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }))
  expect(await slow.nextPacket()).toMatchObject({ cmd: 'suback' })
  slow.socket.pause()
  return slow
}

for (const kind of brokerKinds()) {
  describe(`backpressure (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker)
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    it('pauses reading from the broker while a client does not read, then delivers everything in order', async () => {
      const topic = uid('slow-reader')
      const id = uid('slow')
      const slow = await stalledSubscriber(moat.address().port, id, topic)

      const publisher = await connect(broker.port) // straight to the broker
      for (let n = 0; n < MESSAGES; n++) publisher.publish(topic, numbered(topic, n).subarray(-SIZE))
      const session = (): ReturnType<Moat['sessionInfo']>[number] => moat.sessionInfo().find((s) => s.clientId === id)!
      await expect.poll(() => session().brokerPaused, { timeout: 10_000 }).toBe(true)
      expect(session().clientWriteBuffer).toBeLessThan(BOUND)
      expect(session().brokerReadBuffer).toBeLessThan(BOUND)

      slow.socket.resume()
      const before = slow.packets.length // CONNACK and SUBACK
      await slow.nextPacket(before + MESSAGES - 1, 20_000)
      const received = slow.packets.filter((p) => p.cmd === 'publish').map((p) => (p as { payload: Buffer }).payload)
      expect(received).toHaveLength(MESSAGES)
      received.forEach((payload, n) => {
        expect(payload.readUInt32BE(0)).toBe(n)
        expect(payload.length).toBe(SIZE)
      })
      slow.destroy()
      await publisher.endAsync()
    }, 60_000)

    if (kind === 'mosquitto') {
      it('pauses reading from a client while the broker does not read, then delivers everything in order', async () => {
        const topic = uid('slow-broker')
        const watcher = await connect(broker.port)
        const inbox = new Inbox(watcher)
        await watcher.subscribeAsync(topic)
        const id = uid('fast')
        const fast = await rawSession(moat.address().port, id)
        broker.freeze!()
        try {
          for (let n = 0; n < MESSAGES; n++) fast.send(numbered(topic, n))
          const session = (): ReturnType<Moat['sessionInfo']>[number] => moat.sessionInfo().find((s) => s.clientId === id)!
          await expect.poll(() => session().clientPaused, { timeout: 10_000 }).toBe(true)
          expect(session().brokerWriteBuffer).toBeLessThan(BOUND)
          expect(session().clientReadBuffer).toBeLessThan(BOUND)
        } finally {
          broker.thaw!()
        }
        const got = await inbox.waitFor(MESSAGES, 30_000)
        got.forEach((m, n) => expect(m.payload.readUInt32BE(0)).toBe(n))
        fast.destroy()
        await watcher.endAsync()
      }, 60_000)
    }
  })
}

for (const kind of brokerKinds()) {
  describe(`a broker that closes while a slow client is behind (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker)
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    it('every delivery the broker sent before it closed still reaches the slow client, then the session ends', async () => {
      const topic = uid('last-words')
      const id = uid('behind')
      const slow = await stalledSubscriber(moat.address().port, id, topic)
      const publisher = await connect(broker.port)
      const session = (): ReturnType<Moat['sessionInfo']>[number] | undefined => moat.sessionInfo().find((s) => s.clientId === id)
      // Large deliveries, one at a time, until Moat stops passing them on (the client's buffers
      // are full). The publisher hears each back (the broker has written it to Moat's connection
      // too) and waits until Moat has read it, so none is on its way when Moat pauses. Then one
      // small delivery, and the broker's end behind it: both wait in the kernel, as Moat stops
      // reading the broker while the client is behind.
      const echo = new Inbox(publisher)
      await publisher.subscribeAsync(topic, { qos: 0 })
      let published = 0
      while (session()?.brokerPaused !== true && published < 2_000) {
        await publisher.publishAsync(topic, numbered(topic, published).subarray(-SIZE))
        published++
        await echo.waitFor(published)
        await expect.poll(() => moat.stats.packetsFromBroker[3]! >= published || session()!.brokerReadBuffer > 0).toBe(true)
      }
      expect(session()?.brokerPaused).toBe(true)
      await publisher.publishAsync(topic, Buffer.from('last'))
      published++
      expect((await echo.waitFor(published)).at(-1)!.payload.toString()).toBe('last')
      await publisher.endAsync()
      const readBefore = moat.stats.packetsFromBroker[3]!
      // Time for a read that Moat should not make: none comes, nothing is held in Moat's memory.
      await new Promise((r) => setTimeout(r, 300))
      expect(session()!.brokerReadBuffer).toBe(0)
      expect(moat.stats.packetsFromBroker[3]).toBe(readBefore)
      expect(session()!.brokerPaused).toBe(true)
      await broker.stop()
      slow.socket.resume()
      await slow.closed
      const delivered = slow.packets.filter((p) => p.cmd === 'publish') as Array<{ payload: Buffer }>
      expect(delivered).toHaveLength(published)
      expect(delivered.at(-1)!.payload.toString()).toBe('last')
      await expect.poll(() => moat.sessionCount).toBe(0)
    }, 60_000)
  })
}
