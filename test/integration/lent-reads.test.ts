/**
 * Lent reads (src/net/lent-reads.ts): every plain TCP socket of Moat reads into one shared buffer.
 * Honest traffic must still pass byte for byte when many clients' reads take turns in that buffer,
 * with frames larger than one read and frames split across reads. The suite runs with the buffer
 * poisoned after every read (vitest.config.ts): a view of it kept past its read would reach the
 * broker or a subscriber as 0xee bytes, or as another client's bytes, and fail here.
 */
import { randomBytes } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const PUBLISHERS = 8
const PER_PUBLISHER = 30
/** Sizes around and past the 64 KiB read: one read holds many, or a frame needs several reads. */
const SIZES = [1, 100, 5_000, 65_530, 70_000, 200_000]

/** A payload that says who sent it: publisher and sequence number, then random bytes. */
function payload(publisher: number, seq: number): Buffer {
  const p = Buffer.concat([Buffer.alloc(8), randomBytes(SIZES[(publisher + seq) % SIZES.length]!)])
  p.writeUInt32BE(publisher, 0)
  p.writeUInt32BE(seq, 4)
  return p
}

for (const kind of brokerKinds()) {
  describe(`lent reads (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    const clients: MqttClient[] = []
    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker)
    })
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.endAsync()))
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    it('reads both sides of a plain TCP session into the lent buffer', async () => {
      const clientId = uid('lent-mode')
      clients.push(await connect(moat.address().port, { clientId }))
      const info = moat.sessionInfo().find((s) => s.clientId === clientId)
      expect(info).toMatchObject({ transport: 'tcp', clientReads: 'lent', brokerReads: 'lent' })
    })

    it('relays the interleaved traffic of many clients byte for byte, frames larger than a read included', async () => {
      const base = uid('lent')
      // The broker's view: a subscriber on the broker itself.
      const direct = await connect(broker.port)
      clients.push(direct)
      const atBroker = new Inbox(direct)
      await direct.subscribeAsync(`${base}/#`, { qos: 1 })
      // The way back: a subscriber through Moat (deliveries read from the broker into the lent buffer).
      const back = await connect(moat.address().port)
      clients.push(back)
      const throughMoat = new Inbox(back)
      await back.subscribeAsync(`${base}/#`, { qos: 1 })

      const publishers = await Promise.all(Array.from({ length: PUBLISHERS }, () => connect(moat.address().port)))
      clients.push(...publishers)
      const sent = new Map<string, Buffer>()
      // Every publisher at once, each with its QoS 1 messages in flight together.
      await Promise.all(publishers.map((pub, i) => Promise.all(Array.from({ length: PER_PUBLISHER }, (_, seq) => {
        const p = payload(i, seq)
        sent.set(`${i}:${seq}`, p)
        return pub.publishAsync(`${base}/${i}`, p, { qos: 1 })
      }))))

      const total = PUBLISHERS * PER_PUBLISHER
      for (const inbox of [atBroker, throughMoat]) {
        const got = await inbox.waitFor(total, 20_000)
        const seen = new Set<string>()
        for (const m of got) {
          const key = `${m.payload.readUInt32BE(0)}:${m.payload.readUInt32BE(4)}`
          expect(m.topic).toBe(`${base}/${m.payload.readUInt32BE(0)}`)
          expect(m.payload.equals(sent.get(key)!), `message ${key}`).toBe(true)
          seen.add(key)
        }
        expect(seen.size).toBe(total)
      }
    })
  })
}
