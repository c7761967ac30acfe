/**
 * Topic allow-lists that cannot be bypassed: through Moat to brokers with no ACL of their own.
 * Every bypass attempt is shown from both sides: the client's answer (SUBACK/PUBACK/CONNACK/
 * DISCONNECT codes) and the broker's own record plus a subscriber connected to the broker
 * directly, which must see nothing of what was refused.
 *
 * Barriers instead of sleeps: after a refused packet the same client sends an allowed one; the
 * broker (or a direct subscriber) receiving the allowed one proves it has processed the refused
 * one's place in the stream.
 */
import type { MqttClient } from 'mqtt'
import { generate, type IConnackPacket, type IPubackPacket, type ISubackPacket, type IDisconnectPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { aclFrom } from '../helpers/acl.js'
import { brokerKinds, brokerVersions, startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, rawSession, shortId } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const acl = aclFrom({
  rules: [
    { name: 'own-tree', allow: 'all', topic: 'devices/{client_id}/#' },
    { name: 'public-read', allow: 'subscribe', topic: 'public/#' },
    { name: 'public-write', allow: 'publish', topic: 'public/#', retain: false },
    { name: 'alarm', deny: 'publish', topic: 'alarms/forbidden', onDeny: 'disconnect' },
    { name: 'news', allow: 'subscribe', topic: 'news/#', maxQos: 1 },
    { name: 'everything-else', deny: 'all', topic: '#' },
  ],
})

function pub(topic: string, version: ProtocolLevel, fields: Record<string, unknown> = {}): Buffer {
  return generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false, ...fields } as never, { protocolVersion: version })
}

function sub(messageId: number, filters: string[], version: ProtocolLevel): Buffer {
  return generate({ cmd: 'subscribe', messageId, subscriptions: filters.map((topic) => ({ topic, qos: 0 })) } as never, { protocolVersion: version })
}

const kinds = brokerKinds()

for (const kind of kinds) {
  describe(`topic ACL (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    let witness: MqttClient
    let seen: Inbox

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { acl })
      // Connected to the broker directly: sees everything that reaches it, Moat or not.
      witness = await connect(broker.port)
      seen = new Inbox(witness)
      await witness.subscribeAsync(['#', '$SYS/moat-test/#'], { qos: 0 })
    })
    afterAll(async () => {
      await witness?.endAsync()
      await moat?.shutdown(0)
      await broker?.stop()
    })

    const refused = (version: ProtocolLevel): number => (version === 5 ? 0x87 : 0x80)

    for (const version of brokerVersions(kind).filter((v) => v !== 3)) {
      const v = version === 5 ? '5.0' : '3.1.1'

      it(`MQTT ${v}: a publish to another device's topic never reaches the broker (QoS 0 dropped, QoS 1 answered)`, async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(pub(`devices/someone-else/cmd`, version))
        raw.send(pub(`devices/someone-else/cmd`, version, { qos: 1, messageId: 7 }))
        const ack = await raw.nextPacket() as IPubackPacket
        expect(ack.cmd).toBe('puback')
        expect(ack.messageId).toBe(7)
        // 5.0: the refusal is in the reason code; 3.1.1 has no negative ack (acked and dropped).
        if (version === 5) expect(ack.reasonCode).toBe(0x87)
        raw.send(pub(`devices/${id}/ok`, version)) // barrier: allowed, after the refused ones
        await seen.waitForTopic(`devices/${id}/ok`)
        expect(seen.messages.map((m) => m.topic)).not.toContain('devices/someone-else/cmd')
        await expect.poll(() => broker.received(id)).toEqual(['connect', `publish devices/${id}/ok`])
        expect(raw.isOpen).toBe(true) // a refused publish does not cost the connection
        raw.destroy()
      })

      it(`MQTT ${v}: subscriptions that would reach other topics get failure codes and nothing reaches the broker`, async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, version)
        const bypasses = ['#', '+/+', '$SYS/#', '$share/g/#', 'devices/+/temp', `devices/${id}x/#`]
        raw.send(sub(11, bypasses, version))
        const suback = await raw.nextPacket() as ISubackPacket
        expect(suback).toMatchObject({ cmd: 'suback', messageId: 11, granted: bypasses.map(() => refused(version)) })
        raw.send(pub(`devices/${id}/barrier`, version))
        await seen.waitForTopic(`devices/${id}/barrier`)
        await expect.poll(() => broker.received(id)).toEqual(['connect', `publish devices/${id}/barrier`]) // no SUBSCRIBE at all
        // And nothing is delivered: another device's message does not come back to this client.
        await witness.publishAsync('devices/other/temp', 'secret')
        raw.send(pub(`devices/${id}/barrier2`, version)) // allowed to itself: not subscribed, so nothing comes back
        raw.send(sub(12, [`devices/${id}/echo`], version))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 12, granted: [0] })
        await witness.publishAsync(`devices/${id}/echo`, 'mine')
        const delivered = await raw.nextPacket()
        expect(delivered).toMatchObject({ cmd: 'publish', topic: `devices/${id}/echo` })
        raw.destroy()
      })

      it(`MQTT ${v}: a mixed SUBSCRIBE gets per-filter codes in order, and the allowed filters work`, async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, version)
        const filters: Array<[string, number]> = [[`devices/${id}/#`, 1], ['#', 0], ['public/#', 0], ['devices/+/x', 1]]
        raw.send(generate({ cmd: 'subscribe', messageId: 21, subscriptions: filters.map(([topic, qos]) => ({ topic, qos })) } as never, { protocolVersion: version }))
        const suback = await raw.nextPacket() as ISubackPacket
        expect(suback).toMatchObject({ cmd: 'suback', messageId: 21, granted: [1, refused(version), 0, refused(version)] })
        await witness.publishAsync('elsewhere/x', 'no')
        await witness.publishAsync('public/news', 'yes')
        await witness.publishAsync(`devices/${id}/cmd`, 'yes')
        const first = await raw.nextPacket()
        const second = await raw.nextPacket()
        expect([first, second].map((p) => (p as { topic: string }).topic)).toEqual(['public/news', `devices/${id}/cmd`])
        await expect.poll(() => broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(1)
        raw.destroy()
      })

      it(`MQTT ${v}: a subscription above the rule's maxQos is downgraded: the broker holds it at maxQos`, async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(generate({ cmd: 'subscribe', messageId: 31, subscriptions: [{ topic: 'news/#', qos: 2 }, { topic: '#', qos: 0 }] } as never, { protocolVersion: version }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 31, granted: [1, refused(version)] })
        // The grant of 1 is the broker's own (merged into the client's SUBACK). Mosquitto then delivers
        // a QoS 2 message at QoS 1, the lower of the two; Aedes delivers at the publisher's QoS
        // whatever it granted, so only the grant shows it there.
        await witness.publishAsync(`news/${id}`, 'headline', { qos: 2 })
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'publish', topic: `news/${id}`, qos: kind === 'mosquitto' ? 1 : expect.any(Number) })
        await expect.poll(() => broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(1)
        raw.destroy()
      })

      it(`MQTT ${v}: a will message to a forbidden topic is refused at CONNECT and the broker never sees the client`, async () => {
        const id = shortId()
        const before = broker.connections()
        const raw = new RawClient(moat.address().port, version)
        await raw.connected()
        raw.send(connectPacket(id, version, { will: { topic: 'devices/victim/cmd', payload: Buffer.from('boom'), qos: 0, retain: false } }))
        const connack = await raw.nextPacket() as IConnackPacket
        expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(version === 5 ? 0x87 : 5)
        await raw.closed
        expect(broker.connections()).toBe(before)
        await expect.poll(() => broker.received(id)).toEqual([])
      })

      it(`MQTT ${v}: a retained publish where retain is not allowed is refused and nothing is retained`, async () => {
        const id = shortId()
        const topic = `public/retain-${id}`
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(pub(topic, version, { retain: true, payload: Buffer.from('sticky') }))
        raw.send(pub(`devices/${id}/barrier`, version))
        await seen.waitForTopic(`devices/${id}/barrier`)
        await expect.poll(() => broker.received(id)).toEqual(['connect', `publish devices/${id}/barrier`])
        // A fresh direct subscriber would get a retained message right after its SUBACK; the first
        // message it gets is the one published after it subscribed.
        const late = await connect(broker.port)
        const lateInbox = new Inbox(late)
        await late.subscribeAsync(topic)
        await witness.publishAsync(topic, 'after')
        const [first] = await lateInbox.waitFor(1)
        expect(first!.payload.toString()).toBe('after')
        expect(first!.packet.retain).toBe(false)
        await late.endAsync()
        raw.destroy()
      })

      it(`MQTT ${v}: a rule with onDeny: disconnect closes the client (5.0: DISCONNECT 0x87)`, async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, version)
        raw.send(pub('alarms/forbidden', version))
        const next = await raw.nextPacket()
        if (version === 5) expect(next).toMatchObject({ cmd: 'disconnect', reasonCode: 0x87 } satisfies Partial<IDisconnectPacket>)
        else expect(next).toBeNull()
        await raw.closed
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id)).toEqual(['connect'])
        expect(moat.stats.closedFor('acl_denied')).toBeGreaterThanOrEqual(1)
      })
    }

    if (brokerVersions(kind).includes(5)) {
      it('MQTT 5.0: a topic alias bound to an allowed topic cannot be rebound to a forbidden one', async () => {
        const id = shortId()
        const raw = await rawSession(moat.address().port, id, 5)
        // Bind alias 1 to an allowed topic: forwarded.
        raw.send(pub(`devices/${id}/a`, 5, { payload: Buffer.from('one'), properties: { topicAlias: 1 } }))
        await seen.waitForTopic(`devices/${id}/a`)
        // Try to rebind alias 1 to another device's topic: refused (0x87), and the binding is not moved.
        raw.send(pub('devices/victim/cmd', 5, { qos: 1, messageId: 5, payload: Buffer.from('two'), properties: { topicAlias: 1 } }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'puback', messageId: 5, reasonCode: 0x87 })
        // Publish by alias alone: still the allowed topic, for Moat as for the broker.
        raw.send(pub('', 5, { payload: Buffer.from('three'), properties: { topicAlias: 1 } }))
        await expect.poll(() => seen.messages.filter((m) => m.topic === `devices/${id}/a`).map((m) => m.payload.toString())).toEqual(['one', 'three'])
        expect(seen.messages.map((m) => m.topic)).not.toContain('devices/victim/cmd')
        expect(broker.received(id)).not.toContain('publish devices/victim/cmd')
        raw.destroy()
      })
    }
  })
}
