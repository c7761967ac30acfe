/**
 * When the broker cannot be reached or goes away, clients are told in their version's terms:
 * CONNACK 3 (3.1.1) / 0x88 (5.0) when it is unreachable at connect; when it drops mid-session the
 * client sees the close the broker made, and nothing the broker did not send; and either side
 * closing closes the other.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, RawClient, rawSession, uid } from '../helpers/clients.js'
import { freePort } from '../helpers/mosquitto.js'
import { startMoat } from '../helpers/moat.js'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function moatFor(upstream: { host: string; port: number }): Promise<Moat> {
  const moat = await startMoat(upstream)
  cleanups.push(() => moat.shutdown(0))
  return moat
}

describe('broker unreachable', () => {
  it('answers a 3.1.1 CONNECT with CONNACK 3 (server unavailable) and counts the failure', async () => {
    const moat = await moatFor({ host: '127.0.0.1', port: await freePort() })
    const raw = new RawClient(moat.address().port, 4)
    await raw.connected()
    raw.send(connectPacket(uid('down'), 4))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 3 })
    await raw.closed
    expect(moat.stats.upstreamConnectFailures).toBe(1)
    expect(moat.stats.closedFor('upstream_unavailable')).toBe(1)
  })

  it('answers a 5.0 CONNECT with CONNACK 0x88 (server unavailable): no DISCONNECT may precede CONNACK [MQTT-3.14.0-1]', async () => {
    const moat = await moatFor({ host: '127.0.0.1', port: await freePort() })
    const raw = new RawClient(moat.address().port, 5)
    await raw.connected()
    raw.send(connectPacket(uid('down5'), 5))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', reasonCode: 0x88 })
    expect(await raw.nextPacket()).toBeNull()
  })

  it('lets MQTT.js see "server unavailable"', async () => {
    const moat = await moatFor({ host: '127.0.0.1', port: await freePort() })
    await expect(connect(moat.address().port)).rejects.toThrow(/Server unavailable/i)
  })
})

for (const kind of brokerKinds()) {
  describe(`broker goes away mid-session (${kind})`, () => {
    async function setup(): Promise<{ broker: TestBroker; moat: Moat }> {
      const broker = await startBroker(kind)
      cleanups.push(() => broker.stop())
      const moat = await moatFor(broker)
      return { broker, moat }
    }

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      it(`closes a ${version === 5 ? '5.0' : '3.1.1'} client when the broker stops, with what the broker sent and nothing more`, async () => {
        const { broker, moat } = await setup()
        const raw = await rawSession(moat.address().port, uid('orphan'), version)
        // The same client straight at the broker: what it gets is what the client of Moat must get.
        const direct = await rawSession(broker.port, uid('direct'), version)
        await broker.stop()
        await direct.closed
        const answer = await raw.nextPacket()
        expect(answer).toEqual(await direct.nextPacket(1))
        await raw.closed
        expect(moat.stats.closedFor('upstream_closed') + moat.stats.closedFor('upstream_error')).toBe(1)
      })
    }

    it('closes the broker connection when the client goes away (and the broker publishes its will)', async () => {
      const { broker, moat } = await setup()
      const topic = uid('will')
      const watcher = await connect(broker.port)
      const messages: string[] = []
      watcher.on('message', (t) => messages.push(t))
      await watcher.subscribeAsync(topic)
      const id = uid('leaver')
      const raw = new RawClient(moat.address().port, 4)
      await raw.connected()
      raw.send(connectPacket(id, 4, { will: { topic, payload: Buffer.from('bye'), qos: 0, retain: false } }))
      expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
      raw.socket.resetAndDestroy()
      await broker.clientGone(id)
      await expect.poll(() => messages).toEqual([topic])
      expect(moat.sessionCount).toBe(0)
      await watcher.endAsync()
    })
  })
}
