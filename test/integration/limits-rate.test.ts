/**
 * Rate limits through Moat, measured on the broker side: a client publishing as fast as it can
 * against `messageRate: 100/s` gets 90 to 110 messages a second through, and with `throttle` every
 * message arrives (in order); `drop` refuses what is over (5.0 QoS 1: PUBACK 0x97), `disconnect`
 * closes (5.0: DISCONNECT 0x96); every packet type but the acks counts towards `packetRate`; topic rules limit
 * one pattern without touching the others.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/load.js'
import { Moat as MoatClass } from '../../src/moat.js'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, rawSession, uid, type RawClient } from '../helpers/clients.js'
import { limitsFrom, startMoat, passwordAuth } from '../helpers/moat.js'

function publish(topic: string, n: number, qos: 0 | 1 = 0, version = 4): Buffer {
  const payload = Buffer.alloc(8)
  payload.writeUInt32BE(n, 0)
  return generate({ cmd: 'publish', topic, payload, qos, messageId: qos > 0 ? n + 1 : undefined, retain: false, dup: false } as never, { protocolVersion: version })
}

/** A PINGREQ round trip: once PINGRESP is back, Moat has handled everything sent before it. */
async function barrier(raw: RawClient): Promise<void> {
  const index = raw.packets.length
  raw.send(Buffer.from([0xc0, 0x00]))
  for (let i = index; ; i++) {
    const packet = await raw.nextPacket(i, 15_000)
    if (packet === null) throw new Error('closed before PINGRESP')
    if (packet.cmd === 'pingresp') return
  }
}

const versionName = (v: number): string => (v === 5 ? '5.0' : '3.1.1')

for (const kind of brokerKinds()) {
  describe(`rate limits (${kind})`, () => {
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

    it('messageRate 100/s with throttle: 90-110 messages a second reach the broker, every one of them, in order', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '100/s', onExcess: 'throttle' }) })
      const topic = uid('rate')
      const watcher = await connect(broker.port)
      const arrivals: Array<{ n: number; at: number }> = []
      watcher.on('message', (_t, payload) => arrivals.push({ n: payload.readUInt32BE(0), at: performance.now() }))
      await watcher.subscribeAsync(topic)
      const COUNT = 350
      const raw = await rawSession(moat.address().port, uid('flood'))
      // As fast as it can: everything in one go; TCP and Moat decide the pace.
      raw.send(Buffer.concat(Array.from({ length: COUNT }, (_, n) => publish(topic, n))))
      await expect.poll(() => arrivals.length, { timeout: 15_000, interval: 100 }).toBe(COUNT)
      expect(arrivals.map((a) => a.n)).toEqual(Array.from({ length: COUNT }, (_, n) => n))
      // Measured on the broker side over the last ~3 s (after the initial burst of 10).
      const from = arrivals[30]!
      const to = arrivals[COUNT - 1]!
      const perSecond = ((COUNT - 1 - 30) * 1000) / (to.at - from.at)
      expect(perSecond).toBeGreaterThanOrEqual(90)
      expect(perSecond).toBeLessThanOrEqual(110)
      expect(moat.stats.throttleWaits).toBeGreaterThan(0)
      raw.destroy()
      await expect.poll(() => moat!.stats.sessionsOpen).toBe(0)
      expect(moat.stats.sessionsThrottled).toBe(0)
      await watcher.endAsync()
    }, 30_000)

    it('an MQTT.js client publishing QoS 1 as fast as it can under throttle: every publish is acknowledged and delivered', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '50/s' }) })
      const topic = uid('mqttjs')
      const watcher = await connect(broker.port)
      const seen: number[] = []
      watcher.on('message', (_t, payload) => seen.push(payload.readUInt32BE(0)))
      await watcher.subscribeAsync(topic, { qos: 1 })
      const publisher = await connect(moat.address().port)
      await Promise.all(Array.from({ length: 60 }, (_, n) => {
        const payload = Buffer.alloc(4)
        payload.writeUInt32BE(n)
        return publisher.publishAsync(topic, payload, { qos: 1 })
      }))
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(60)
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, n) => n))
      expect(moat.stats.throttleWaits).toBeGreaterThan(0)
      await publisher.endAsync()
      await watcher.endAsync()
    })

    it('a throttled client whose connection is reset is noticed at once: its session ends and what it held never reaches the broker', async () => {
      // 1/m: the throttle would last a minute; only reading on while throttled sees the client go.
      moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '1/m' }) })
      const id = uid('leaver')
      const topic = uid('held')
      const raw = await rawSession(moat.address().port, id)
      raw.send(Buffer.concat(Array.from({ length: 5 }, (_, n) => publish(topic, n))))
      await expect.poll(() => moat!.sessionInfo().some((s) => s.clientId === id && s.clientPaused), { timeout: 5000 }).toBe(true)
      await expect.poll(() => broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([`publish ${topic}`])
      raw.socket.resetAndDestroy() // an abort; a clean close (FIN) is 'done sending': see the next test
      await expect.poll(() => moat!.sessionCount, { timeout: 5000 }).toBe(0)
      await broker.clientGone(id)
      expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([`publish ${topic}`])
    })

    it('a throttled client that sends more, then DISCONNECT and closes: all it sent reaches the broker, then the session ends', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '5/s' }) })
      const id = uid('sender')
      const topic = uid('backlog')
      const raw = await rawSession(moat.address().port, id)
      raw.send(Buffer.concat([0, 1, 2].map((n) => publish(topic, n)))) // the second is throttled
      await expect.poll(() => moat!.sessionInfo().some((s) => s.clientId === id && s.clientPaused), { timeout: 5000 }).toBe(true)
      raw.send(Buffer.concat([3, 4, 5].map((n) => publish(topic, n)))) // read while throttled: held
      await new Promise((r) => setTimeout(r, 50))
      raw.send(generate({ cmd: 'disconnect' }))
      raw.socket.end()
      await broker.clientGone(id)
      expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual(Array.from({ length: 6 }, () => `publish ${topic}`))
      await expect.poll(() => moat!.sessionCount, { timeout: 5000 }).toBe(0)
      expect(moat.stats.closedFor('client_disconnect')).toBe(1)
    })

    it('a throttled client is not read, the others are: a second client publishes freely meanwhile', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '20/s' }) })
      const slowTopic = uid('throttled')
      const raw = await rawSession(moat.address().port, uid('flood'))
      raw.send(Buffer.concat(Array.from({ length: 200 }, (_, n) => publish(slowTopic, n))))
      await expect.poll(() => moat!.sessionInfo().some((s) => s.clientPaused), { timeout: 5000 }).toBe(true)
      // Another client of the same Moat: its own buckets, its messages go straight through.
      const id = uid('free')
      const other = await rawSession(moat.address().port, id)
      const topic = uid('free-topic')
      other.send(Buffer.concat(Array.from({ length: 5 }, (_, n) => publish(topic, n))))
      await barrier(other)
      other.destroy()
      await broker.clientGone(id)
      await expect.poll(() => broker.received(id).filter((r) => r === `publish ${topic}`)).toHaveLength(5)
      raw.destroy()
    })

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      it(`drop (${versionName(version)}): what is over the rate is refused, counted, and never reaches the broker`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '20/s', burst: '100ms', onExcess: 'drop' }) })
        const id = uid('drop')
        const topic = uid('dropped')
        const raw = await rawSession(moat.address().port, id, version)
        const started = performance.now()
        raw.send(Buffer.concat(Array.from({ length: 200 }, (_, n) => publish(topic, n, 0, version))))
        await barrier(raw)
        const elapsed = performance.now() - started
        raw.destroy()
        await broker.clientGone(id)
        const through = broker.received(id).filter((r) => r === `publish ${topic}`).length
        // At most the burst (2) + 20/s over the time it took, plus one.
        expect(through).toBeGreaterThanOrEqual(1)
        expect(through).toBeLessThanOrEqual(3 + Math.ceil((20 * elapsed) / 1000))
        expect(moat.stats.rejectedFor('rate_limited')).toBe(200 - through)
        await expect.poll(() => moat!.stats.sessionsOpen).toBe(0)
      })

      it(`disconnect (${versionName(version)}): a flood closes the client${version === 5 ? ' with DISCONNECT 0x96' : ''}; the broker gets only what was within the rate`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '5/s', burst: '1s', onExcess: 'disconnect' }) })
        const id = uid('disc')
        const topic = uid('flooded')
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(Buffer.concat(Array.from({ length: 100 }, (_, n) => publish(topic, n, 0, version))))
        const answer = await raw.nextPacket()
        await raw.closed
        if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x96 })
        else expect(answer).toBeNull()
        await broker.clientGone(id)
        const through = broker.received(id).filter((r) => r === `publish ${topic}`).length
        expect(through).toBeGreaterThanOrEqual(5)
        expect(through).toBeLessThan(10)
        expect(moat.stats.closedFor('rate_limited')).toBe(1)
      })

      it(`packetRate counts every packet type (${versionName(version)}): a PINGREQ flood is closed`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ packetRate: '10/s', burst: '1s', onExcess: 'disconnect' }) })
        const id = uid('ping')
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(Buffer.concat(Array.from({ length: 200 }, () => Buffer.from([0xc0, 0x00]))))
        await raw.closed
        const last = raw.packets[raw.packets.length - 1]
        if (version === 5) expect(last).toMatchObject({ cmd: 'disconnect', reasonCode: 0x96 })
        else expect(raw.packets.some((p) => p.cmd === 'disconnect')).toBe(false)
        expect(moat.stats.closedFor('rate_limited')).toBe(1)
        await broker.clientGone(id)
        const pings = broker.received(id).filter((r) => r === 'pingreq').length
        expect(pings).toBeGreaterThanOrEqual(10)
        expect(pings).toBeLessThan(20)
      })

      it(`acks that answer nothing the broker sent are counted (${versionName(version)}): a PUBACK flood is closed`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ packetRate: '10/s', burst: '1s', onExcess: 'disconnect' }) })
        const id = uid('ackflood')
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(Buffer.concat(Array.from({ length: 200 }, (_, i) => Buffer.from([0x40, 0x02, 0x10, i]))))
        await raw.closed
        if (version === 5) expect(raw.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x96 })
        else expect(raw.packets.some((p) => p.cmd === 'disconnect')).toBe(false)
        expect(moat.stats.closedFor('rate_limited')).toBe(1)
        await broker.clientGone(id)
        const acks = broker.received(id).filter((r) => r.startsWith('puback')).length
        expect(acks).toBeGreaterThanOrEqual(10)
        expect(acks).toBeLessThan(20)
      })
    }

    if (brokerVersions(kind).includes(5)) {
      // 0x96 is not a PUBACK reason code in 5.0 (section 3.4.2.1): Quota exceeded (0x97) is.
      it('drop, 5.0 QoS 1: a publish over the rate gets PUBACK 0x97 from Moat and never reaches the broker', async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ messageRate: '1/m', onExcess: 'drop' }) })
        const id = uid('puback')
        const topic = uid('acked')
        const raw = await rawSession(moat.address().port, id, 5)
        raw.send(Buffer.concat([publish(topic, 0, 1, 5), publish(topic, 1, 1, 5), publish(topic, 2, 1, 5)]))
        const acks = [await raw.nextPacket(), await raw.nextPacket(), await raw.nextPacket()]
        const byId = new Map(acks.map((a) => [(a as { messageId: number }).messageId, a]))
        expect(byId.get(1)).toMatchObject({ cmd: 'puback' })
        expect((byId.get(1) as { reasonCode?: number }).reasonCode ?? 0).toBeLessThan(0x80)
        expect(byId.get(2)).toMatchObject({ cmd: 'puback', reasonCode: 0x97 })
        expect(byId.get(3)).toMatchObject({ cmd: 'puback', reasonCode: 0x97 })
        raw.destroy()
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id).filter((r) => r === `publish ${topic}`)).toHaveLength(1)
      })
    }

    it('packetRate with throttle: a SUBSCRIBE flood is slowed down, and every SUBSCRIBE is answered', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ packetRate: '20/s', burst: '100ms' }) })
      const id = uid('subflood')
      const raw = await rawSession(moat.address().port, id)
      const started = performance.now()
      raw.send(Buffer.concat(Array.from({ length: 20 }, (_, n) => generate({ cmd: 'subscribe', messageId: n + 1, subscriptions: [{ topic: `${id}/${n}`, qos: 0 }] }))))
      for (let n = 0; n < 20; n++) expect(await raw.nextPacket(undefined, 10_000)).toMatchObject({ cmd: 'suback', messageId: n + 1 })
      // 2 at once, then one every 50 ms: the 20th cannot be answered before ~0.9 s.
      expect(performance.now() - started).toBeGreaterThan(800)
      expect(moat.stats.throttleWaits).toBeGreaterThan(0)
      raw.destroy()
      await broker.clientGone(id)
      await expect.poll(() => broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(20)
    })

    it('a topic rule (alerts/# at 1/s, drop) limits that pattern only', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ topics: [{ topic: 'alerts/#', rate: '1/m', onExcess: 'drop' }] }) })
      const id = uid('topics')
      const other = uid('other')
      const raw = await rawSession(moat.address().port, id)
      raw.send(Buffer.concat([
        ...Array.from({ length: 5 }, (_, n) => publish(`alerts/${id}`, n)),
        ...Array.from({ length: 5 }, (_, n) => publish(other, n)),
      ]))
      await barrier(raw)
      raw.destroy()
      await broker.clientGone(id)
      const received = broker.received(id)
      expect(received.filter((r) => r === `publish alerts/${id}`)).toHaveLength(1)
      expect(received.filter((r) => r === `publish ${other}`)).toHaveLength(5)
    })

    it('a reload that lifts the rate frees a throttled client within a second: the held messages go through', async () => {
      const file = join(mkdtempSync(join(tmpdir(), 'moat-rate-')), 'moat.yaml')
      const yaml = (rate: string): string => [
        'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
        `upstream: { host: ${broker.host}, port: ${broker.port} }`,
        `limits: { messageRate: ${rate} }`,
        'log: { level: silent }',
        'auth: { anonymous: true }',
      ].join('\n')
      writeFileSync(file, yaml('1/h'))
      moat = new MoatClass(loadConfig(file), { logger: pino({ level: 'silent' }) })
      await moat.start()
      const topic = uid('reload')
      const watcher = await connect(broker.port)
      const seen: number[] = []
      watcher.on('message', (_t, payload) => seen.push(payload.readUInt32BE(0)))
      await watcher.subscribeAsync(topic)
      const raw = await rawSession(moat.address().port, uid('held'))
      raw.send(Buffer.concat(Array.from({ length: 5 }, (_, n) => publish(topic, n))))
      await expect.poll(() => seen.length).toBe(1)
      await expect.poll(() => moat!.stats.sessionsThrottled).toBe(1)
      writeFileSync(file, yaml('1000/s'))
      expect(moat.reload()).toBe(true)
      await expect.poll(() => seen.length, { timeout: 5000 }).toBe(5)
      expect(seen).toEqual([0, 1, 2, 3, 4])
      expect(moat.stats.sessionsThrottled).toBe(0)
      expect(moat.stats.throttleWaits).toBe(1)
      raw.destroy()
      await watcher.endAsync()
    })

    it('perUsername: the rate is shared by all connections of one user name', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ perUsername: { messageRate: '1/m', burst: '1s', onExcess: 'drop' } }), auth: await passwordAuth(['alice']) })
      const topic = uid('shared')
      const ids = [uid('user-a'), uid('user-a')]
      const clients = await Promise.all(ids.map(async (id) => {
        const raw = new (await import('../helpers/clients.js')).RawClient(moat!.address().port)
        await raw.connected()
        raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 60, username: 'alice', password: Buffer.from('pw') } as never)
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
        return raw
      }))
      for (const raw of clients) {
        raw.send(Buffer.concat(Array.from({ length: 3 }, (_, n) => publish(topic, n))))
        await barrier(raw)
        raw.destroy()
      }
      for (const id of ids) await broker.clientGone(id)
      const through = ids.flatMap((id) => broker.received(id)).filter((r) => r === `publish ${topic}`)
      expect(through).toHaveLength(1)
    })

    if (kind === 'mosquitto') {
      for (const version of [4, 5] as const) {
        it(`packetRate 20/s does not hold back a QoS 1 subscriber's PUBACKs (${versionName(version)}): at 60 msg/s it keeps up, its SUBSCRIBE and PINGREQ are answered at once, the broker gets every PUBACK and redelivers nothing`, async () => {
          moat = await startMoat(broker, { limits: limitsFrom({ packetRate: '20/s' }) })
          const id = uid('acker')
          const topic = uid('deliveries')
          const COUNT = 180
          const raw = await rawSession(moat.address().port, id, version)
          const sub = (messageId: number, filter: string): Buffer => generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos: 1 }] } as never, { protocolVersion: version })
          raw.send(sub(1, topic))
          expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 1 })
          // The subscriber: acknowledges each delivery as it arrives, and notes when its own requests are answered.
          const got: number[] = []
          const answeredAt = new Map<string, number>()
          const reading = (async () => {
            while (got.length < COUNT || answeredAt.size < 2) {
              const packet = await raw.nextPacket(undefined, 20_000)
              if (packet === null) throw new Error('subscriber closed')
              if (packet.cmd === 'publish') {
                got.push((packet.payload as Buffer).readUInt32BE(0))
                raw.send(generate({ cmd: 'puback', messageId: packet.messageId } as never, { protocolVersion: version }))
              } else {
                answeredAt.set(packet.cmd, performance.now())
              }
            }
          })()
          // Published on the broker directly, 3 every 50 ms: 60 a second for 3 s.
          const publisher = await connect(broker.port)
          const started = performance.now()
          let askedAt = 0
          for (let tick = 0; tick < COUNT / 3; tick++) {
            for (let k = 0; k < 3; k++) {
              const payload = Buffer.alloc(4)
              payload.writeUInt32BE(tick * 3 + k)
              void publisher.publishAsync(topic, payload, { qos: 1 })
            }
            if (tick === 30) {
              // Half-way through: a SUBSCRIBE and a PINGREQ queue behind whatever acks Moat holds.
              askedAt = performance.now()
              raw.send(Buffer.concat([sub(2, uid('other')), Buffer.from([0xc0, 0x00])]))
            }
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
          await reading
          expect(got).toEqual(Array.from({ length: COUNT }, (_, n) => n))
          expect(answeredAt.get('suback')! - askedAt).toBeLessThan(1000)
          expect(answeredAt.get('pingresp')! - askedAt).toBeLessThan(1000)
          // The broker's side: every PUBACK arrived, soon after the deliveries (acks held to 20/s
          // would need 9 s for 180; publishing alone takes 3), and no delivery was sent twice.
          await expect.poll(() => broker.received(id).filter((r) => r === 'puback').length, { timeout: 15_000, interval: 50 }).toBe(COUNT)
          expect(performance.now() - started).toBeLessThan(6000)
          const sent = broker.logs!().filter((l) => l.startsWith(`Sending PUBLISH to ${id} `))
          expect(sent).toHaveLength(COUNT)
          expect(sent.filter((l) => l.startsWith(`Sending PUBLISH to ${id} (d1`))).toEqual([])
          expect(broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(2)
          expect(moat.stats.throttleWaits).toBe(0)
          raw.destroy()
          await publisher.endAsync()
        }, 30_000)
      }
    }

    it('packetRate 20/s still holds back a client that publishes faster: 40 QoS 1 publishes sent at once reach the broker over about 2 s, acknowledged as they pass', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ packetRate: '20/s' }) })
      const id = uid('fast')
      const topic = uid('paced')
      const watcher = await connect(broker.port)
      const arrivals: number[] = []
      watcher.on('message', () => arrivals.push(performance.now()))
      await watcher.subscribeAsync(topic)
      const raw = await rawSession(moat.address().port, id)
      const started = performance.now()
      raw.send(Buffer.concat(Array.from({ length: 40 }, (_, n) => publish(topic, n, 1))))
      const acked: number[] = []
      for (let n = 0; n < 40; n++) {
        expect(await raw.nextPacket(undefined, 10_000)).toMatchObject({ cmd: 'puback', messageId: n + 1 })
        acked.push(performance.now())
      }
      await expect.poll(() => arrivals.length, { timeout: 10_000 }).toBe(40)
      // The bucket holds 2; the other 38 pass at 20 a second: the 40th no sooner than 1.9 s after the first.
      expect(arrivals[39]! - started).toBeGreaterThan(1700)
      expect(acked[39]! - started).toBeGreaterThan(1700)
      // Within the rate at every point: at most 2 + 20/s of elapsed time (plus one for rounding).
      arrivals.forEach((at, n) => expect(n + 1).toBeLessThanOrEqual(3 + Math.ceil((20 * (at - started)) / 1000)))
      expect(moat.stats.throttleWaits).toBeGreaterThan(0)
      raw.destroy()
      await broker.clientGone(id)
      expect(broker.received(id).filter((r) => r === `publish ${topic}`)).toHaveLength(40)
      await watcher.endAsync()
    })
  })
}
