/**
 * Payload caps per topic pattern and what a 5.0 client is told in CONNACK: a 2 MiB payload to a
 * 16 KiB topic is refused and the broker never sees it, while a 1 MiB payload to `camera/x` passes.
 */
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, rawSession, uid } from '../helpers/clients.js'
import { limitsFrom, startMoat } from '../helpers/moat.js'

const KiB = 1024
const MiB = 1024 * 1024

function publish(topic: string, size: number, version: number): Buffer {
  return generate({ cmd: 'publish', topic, payload: Buffer.alloc(size, 0x5a), qos: 0, retain: false, dup: false }, { protocolVersion: version })
}

for (const kind of brokerKinds()) {
  describe(`payload caps (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, {
        limits: limitsFrom({ maxPacketSize: '4MiB', maxPayload: '16KiB', payload: [{ topic: 'camera/#', max: '1MiB' }], maxInflight: 8, maxKeepalive: '30s' }),
      })
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      const name = version === 5 ? '5.0' : '3.1.1'

      it(`${name}: a 2 MiB payload to a 16 KiB topic is refused${version === 5 ? ' (DISCONNECT 0x95)' : ' (closed)'} and the broker never sees it`, async () => {
        const id = uid('big')
        const topic = `data/${id}`
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(publish(topic, 2 * MiB, version))
        const answer = await raw.nextPacket(undefined, 10_000)
        await raw.closed
        if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x95 })
        else expect(answer).toBeNull()
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id)).toEqual(['connect'])
        expect(moat.stats.closedFor('payload_too_large')).toBeGreaterThanOrEqual(1)
      })

      it(`${name}: just over the default cap is refused too, exactly at it passes`, async () => {
        const id = uid('edge')
        const topic = `data/${id}`
        const watcher = await connect(broker.port)
        const inbox = new Inbox(watcher)
        await watcher.subscribeAsync(topic)
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(publish(topic, 16 * KiB, version))
        expect((await inbox.waitForTopic(topic)).payload.length).toBe(16 * KiB)
        raw.send(publish(topic, 16 * KiB + 1, version))
        await raw.closed
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id)).toEqual(['connect', `publish ${topic}`])
        await watcher.endAsync()
      })

      it(`${name}: a 1 MiB payload to camera/x passes (its pattern allows 1 MiB)`, async () => {
        const id = uid('cam')
        const topic = `camera/${id}`
        const watcher = await connect(broker.port)
        const inbox = new Inbox(watcher)
        await watcher.subscribeAsync(topic)
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(publish(topic, MiB, version))
        const message = await inbox.waitForTopic(topic, 10_000)
        expect(message.payload.length).toBe(MiB)
        expect(raw.isOpen).toBe(true)
        raw.destroy()
        await watcher.endAsync()
      })
    }

    if (brokerVersions(kind).includes(5)) {
      it('5.0 CONNACK tells the client Maximum Packet Size, Receive Maximum and Server Keep Alive', async () => {
        const raw = new RawClient(moat.address().port, 5)
        await raw.connected()
        raw.send(connectPacket(uid('connack'), 5, { keepalive: 120 }))
        const connack = await raw.nextPacket()
        expect(connack).toMatchObject({
          cmd: 'connack',
          reasonCode: 0,
          properties: { maximumPacketSize: 4 * MiB, receiveMaximum: 8, serverKeepAlive: 30 },
        })
        raw.destroy()
      })

      it('5.0 CONNACK keeps a keepalive already under the maximum (no Server Keep Alive added)', async () => {
        const raw = new RawClient(moat.address().port, 5)
        await raw.connected()
        raw.send(connectPacket(uid('connack'), 5, { keepalive: 10 }))
        const connack = await raw.nextPacket() as { properties?: Record<string, unknown> }
        expect(connack.properties?.serverKeepAlive).toBeUndefined()
        expect(connack.properties?.maximumPacketSize).toBe(4 * MiB)
        raw.destroy()
      })
    }
  })
}
