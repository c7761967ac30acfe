/**
 * Per-client quotas: topic filters held, QoS 1/2 messages in flight towards the broker (the
 * Receive Maximum told to 5.0 clients), and the idle timeout at 1.5 times the keepalive (capped by
 * maxKeepalive). Each refusal is answered in the client's version and the broker sees nothing of it.
 */
import { generate } from 'mqtt-packet'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, RawClient, rawSession, uid } from '../helpers/clients.js'
import { limitsFrom, startMoat } from '../helpers/moat.js'

const versionName = (v: number): string => (v === 5 ? '5.0' : '3.1.1')

for (const kind of brokerKinds()) {
  describe(`quotas (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat | null = null
    beforeAll(async () => {
      broker = await startBroker(kind)
    })
    afterEach(async () => {
      await moat?.shutdown(0)
      moat = null
    })
    afterAll(async () => {
      await broker?.stop()
    })

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      it(`${versionName(version)}: maxSubscriptions 2: a third filter is refused (SUBACK ${version === 5 ? '0x97' : '0x80'}), the client stays, the broker never sees it; re-subscribing and unsubscribing are counted right`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ maxSubscriptions: 2 }) })
        const id = uid('subs')
        const t = (n: number): string => `${id}/a/${n}`
        const raw = await rawSession(moat.address().port, id, version)
        const sub = (messageId: number, topic: string): Buffer => generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 0 }] } as never, { protocolVersion: version })
        raw.send(sub(1, t(1)))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback' })
        raw.send(sub(2, t(2)))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback' })
        raw.send(sub(3, t(1))) // held already: costs nothing
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback' })
        raw.send(generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: [t(2)] } as never, { protocolVersion: version }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'unsuback' })
        raw.send(sub(5, t(3))) // the slot t(2) gave back
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 5, granted: [0] })
        // Over the quota alone: Moat answers, nothing goes to the broker.
        raw.send(sub(6, t(4)))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 6, granted: [version === 5 ? 0x97 : 0x80] })
        // The filter over the quota gets its own SUBACK failure code (5.0: 0x97 quota exceeded; 3.1.1:
        // 0x80) while the allowed one of the same SUBSCRIBE still reaches the broker; the client stays.
        raw.send(generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: t(5), qos: 0 }, { topic: t(1), qos: 0 }] } as never, { protocolVersion: version }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 7, granted: [version === 5 ? 0x97 : 0x80, 0] })
        expect(raw.isOpen).toBe(true)
        // The broker holds no subscription for the refused filters: published there directly, only t(1) comes through.
        const publisher = await connect(broker.port)
        for (const n of [4, 5, 1]) await publisher.publishAsync(t(n), `to ${n}`)
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'publish', topic: t(1) })
        await publisher.endAsync()
        raw.destroy()
        await broker.clientGone(id)
        // SUBSCRIBE 1, 2, 3, 5 and 7 (rewritten without t(5)) reached the broker; 6 did not.
        await expect.poll(() => broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(5)
        if (broker.logs !== undefined) {
          const seen = broker.logs().filter((l) => l.includes(t(4)) || l.includes(t(5)))
          expect(seen.every((l) => l.startsWith('Received PUBLISH from') || l.startsWith('Sending PUBLISH to'))).toBe(true)
          expect(seen.some((l) => l.startsWith(`Sending PUBLISH to ${id} `))).toBe(false)
        }
        expect(moat.stats.rejectedFor('quota_exceeded')).toBe(2)
        expect(moat.stats.closedFor('quota_exceeded')).toBe(0)
      })
    }

    if (kind === 'mosquitto') {
      const inflightSetup = async (version: 4 | 5) => {
        moat = await startMoat(broker, { limits: limitsFrom({ maxInflight: 2 }) })
        const id = uid('inflight')
        const topic = uid('inflight-topic')
        const raw = await rawSession(moat.address().port, id, version)
        const pub = (messageId: number): Buffer => generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId, retain: false, dup: false } as never, { protocolVersion: version })
        // Acknowledged one by one: never more than one in flight.
        for (let n = 1; n <= 4; n++) {
          raw.send(pub(n))
          expect(await raw.nextPacket()).toMatchObject({ cmd: 'puback', messageId: n })
        }
        return { id, topic, raw, pub }
      }

      it('5.0: maxInflight 2: a third unacknowledged QoS 1 publish closes the client (DISCONNECT 0x93); acks give slots back', async () => {
        const { id, topic, raw, pub } = await inflightSetup(5)
        broker.freeze!()
        try {
          raw.send(Buffer.concat([pub(10), pub(11), pub(10) /* a retransmission is not counted twice */, pub(12)]))
          expect(await raw.nextPacket()).toMatchObject({ cmd: 'disconnect', reasonCode: 0x93 })
          await raw.closed
        } finally {
          broker.thaw!()
        }
        await broker.clientGone(id)
        const publishes = broker.received(id).filter((r) => r === `publish ${topic}`)
        expect(publishes).toHaveLength(7) // 4 acknowledged, then 10, 11 and the retransmitted 10
        expect(moat!.stats.closedFor('receive_maximum_exceeded')).toBe(1)
      })

      it('3.1.1: maxInflight 2: a third unacknowledged QoS 1 publish waits (the client is not read) until the broker acknowledges one', async () => {
        const { id, topic, raw, pub } = await inflightSetup(4)
        broker.freeze!()
        try {
          raw.send(Buffer.concat([pub(10), pub(11), pub(12), pub(13)]))
          await expect.poll(() => moat!.sessionInfo().find((s) => s.clientId === id)?.clientPaused, { timeout: 5000 }).toBe(true)
        } finally {
          broker.thaw!()
        }
        const acked = new Set<number>()
        while (acked.size < 4) {
          const packet = await raw.nextPacket(undefined, 10_000)
          expect(packet).toMatchObject({ cmd: 'puback' })
          acked.add((packet as { messageId: number }).messageId)
        }
        expect([...acked].sort((a, b) => a - b)).toEqual([10, 11, 12, 13])
        expect(raw.isOpen).toBe(true)
        raw.destroy()
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id).filter((r) => r === `publish ${topic}`)).toHaveLength(8)
        expect(moat!.stats.closedFor('receive_maximum_exceeded')).toBe(0)
      })
    }

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      it(`${versionName(version)}: maxKeepalive 1s: a client that asked for no keepalive and stays silent is closed after 1.5 s${version === 5 ? ' (DISCONNECT 0x8D)' : ''}`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ maxKeepalive: '1s' }) })
        const id = uid('idle')
        const raw = new RawClient(moat.address().port, version)
        await raw.connected()
        raw.send(connectPacket(id, version, { keepalive: 0 }))
        const connack = await raw.nextPacket()
        expect(connack).toMatchObject({ cmd: 'connack' })
        if (version === 5) expect((connack as { properties?: { serverKeepAlive?: number } }).properties?.serverKeepAlive).toBe(1)
        const answer = await raw.nextPacket(undefined, 10_000)
        await raw.closed
        if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8d })
        else expect(answer).toBeNull()
        expect(moat.stats.closedFor('idle_timeout')).toBe(1)
        await broker.clientGone(id)
      })
    }

    if (kind === 'mosquitto') {
      it('at a keepalive the broker knows, the broker times a silent client out and Moat passes its bare close on; a broker that does not, Moat closes 10 s later', async () => {
        moat = await startMoat(broker, { limits: limitsFrom({}) })
        const silent = async (id: string): Promise<RawClient> => {
          const raw = new RawClient(moat!.address().port, 5)
          await raw.connected()
          raw.send(connectPacket(id, 5, { keepalive: 1, properties: {} }))
          expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack' })
          return raw
        }
        const first = await silent(uid('silent'))
        const started = Date.now()
        await first.closed
        expect(first.packets.map((p) => p.cmd)).toEqual(['connack'])
        expect(moat.stats.closedFor('idle_timeout')).toBe(0)
        expect(broker.logs!().some((l) => /has exceeded timeout/.test(l))).toBe(true)
        // The broker frozen: it times nobody out; Moat's backstop, 1.5 s + 10 s after the last byte.
        const second = await silent(uid('silent'))
        broker.freeze!()
        try {
          await second.closed
          expect(Date.now() - started).toBeGreaterThan(11_000)
          expect(second.packets.map((p) => p.cmd)).toEqual(['connack'])
          expect(moat.stats.closedFor('idle_timeout')).toBe(1)
        } finally {
          broker.thaw!()
        }
      }, 40_000)
    }

    it('a client that keeps pinging within its keepalive is not closed for idleness', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ maxKeepalive: '1s' }) })
      const id = uid('pinger')
      const raw = new RawClient(moat.address().port, 4)
      await raw.connected()
      raw.send(connectPacket(id, 4, { keepalive: 1 }))
      expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack' })
      // Four round trips, each answered before the next goes out, spaced under the keepalive (pacing, not waiting).
      for (let n = 0; n < 4; n++) {
        await new Promise<void>((resolve) => setTimeout(resolve, 700))
        raw.send(Buffer.from([0xc0, 0x00]))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'pingresp' })
      }
      expect(raw.isOpen).toBe(true)
      expect(moat.stats.closedFor('idle_timeout')).toBe(0)
      raw.destroy()
    })
  })
}
