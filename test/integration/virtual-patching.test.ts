/**
 * Virtual patching: the known triggers of broker CVEs, each sent through Moat to a real Mosquitto
 * (2.0.11 on the CI image: still vulnerable to the 2023 ones), showing both sides: what the client
 * gets back, and that the trigger never reached the broker (its own log of what it received, its
 * count of connections, and a subscriber connected to it directly). The table of CVEs, triggers and
 * tests is docs/virtual-patching.md.
 */
import { generate, type IConnackPacket, type IDisconnectPacket, type IPubackPacket, type ISubackPacket } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { varint } from '../helpers/bytes.js'
import { connect, connectPacket, Inbox, RawClient, rawSession, shortId, uid } from '../helpers/clients.js'
import { limitsFrom, startMoat } from '../helpers/moat.js'
import { MAX_USER_PROPERTIES } from '../../src/protocol/properties.js'

function publish(topic: string, qos: 0 | 1 | 2, id: number, payload: string, version: ProtocolLevel): Buffer {
  return generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, messageId: qos > 0 ? id : undefined, retain: false, dup: false }, { protocolVersion: version })
}

for (const kind of brokerKinds().filter((k) => k === 'mosquitto')) {
  describe(`virtual patching of broker CVEs, in front of ${kind}`, () => {
    let broker: TestBroker
    let moat: Moat
    let port: number
    let spy: MqttClient
    let spyInbox: Inbox

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { limits: { maxPacketSize: 256 * 1024, connectTimeoutMs: 2000 } })
      port = moat.address().port
      // The broker-side witness: on the broker directly, it sees every publish that got through,
      // server topics included.
      spy = await connect(broker.port, { clientId: uid('spy') })
      spyInbox = new Inbox(spy)
      await spy.subscribeAsync(['#', '$cve/#'])
    })

    afterAll(async () => {
      await spy?.endAsync()
      await moat?.shutdown(0)
      await broker?.stop()
    })

    /** A message that did get through, as the barrier for everything the client sent before it. */
    async function barrier(raw: RawClient, version: ProtocolLevel): Promise<void> {
      const topic = `cve/barrier/${uid('b')}`
      raw.send(publish(topic, 0, 0, 'barrier', version))
      await spyInbox.waitForTopic(topic)
    }

    async function neverDialled(send: (raw: RawClient) => void, version: ProtocolLevel, counted: string): Promise<RawClient> {
      const connections = broker.connections()
      const dials = moat.stats.upstreamConnects
      const closed = moat.stats.closedFor(counted as never)
      const raw = new RawClient(port, version)
      await raw.connected()
      send(raw)
      await raw.closed
      expect(moat.stats.closedFor(counted as never)).toBe(closed + 1)
      expect(moat.stats.upstreamConnects).toBe(dials)
      expect(broker.connections()).toBe(connections)
      return raw
    }

    it('CVE-2017-7650: refuses a client id or user name holding + or # (pattern ACL bypass)', async () => {
      // 3.1.1: CONNACK 2 (identifier rejected) for the client id, 4 for the user name; 5.0: 0x85 / 0x86.
      for (const [version, field, value, code] of [
        [4, 'clientId', 'cve+7650', 2], [4, 'clientId', '#', 2], [4, 'username', 'u#', 4],
        [5, 'clientId', 'cve#7650', 0x85], [5, 'username', '+', 0x86],
      ] as const) {
        const clientId = field === 'clientId' ? value : shortId()
        const extra = field === 'username' ? { username: value } : {}
        const raw = await neverDialled((r) => r.send(connectPacket(clientId, version, extra)), version, field === 'clientId' ? 'invalid_client_id' : 'bad_credentials')
        const connack = raw.packets[0] as IConnackPacket
        expect(connack.cmd).toBe('connack')
        expect(version === 5 ? connack.reasonCode : connack.returnCode).toBe(code)
      }
      expect(broker.logs!().filter((l) => /as (cve|#|\+)/.test(l))).toEqual([])
    })

    it('CVE-2018-12543: refuses a client PUBLISH or will on a topic beginning with $', async () => {
      for (const version of [4, 5] as const) {
        const id = shortId()
        const raw = await rawSession(port, id, version)
        raw.send(publish('$cve/12543', 1, 11, 'boom', version))
        const ack = await raw.nextPacket() as IPubackPacket
        // 5.0: PUBACK 0x90 (topic name invalid); 3.1.1 has no refusal code: a plain PUBACK, dropped.
        expect(ack).toMatchObject({ cmd: 'puback', messageId: 11 })
        if (version === 5) expect(ack.reasonCode).toBe(0x90)
        raw.send(publish('$cve/12543', 0, 0, 'boom', version))
        await barrier(raw, version)
        expect(raw.isOpen).toBe(true)
        raw.destroy()
        await broker.clientGone(id)
        expect(broker.received(id).filter((r) => r.startsWith('publish $'))).toEqual([])
      }
      // A will on a server topic is refused at CONNECT (5.0 CONNACK 0x90).
      const raw = await neverDialled((r) => r.send(connectPacket(shortId(), 5, { will: { topic: '$cve/will', payload: Buffer.from('x'), qos: 0, retain: false } })), 5, 'invalid_topic')
      expect(raw.packets[0]).toMatchObject({ cmd: 'connack', reasonCode: 0x90 })
      expect(spyInbox.messages.filter((m) => m.topic.startsWith('$'))).toEqual([])
    })

    it('CVE-2019-11779: refuses a SUBSCRIBE of a filter with 65,400 levels (Mosquitto stack overflow) as a patched broker does: closing the client', async () => {
      for (const version of [4, 5] as const) {
        const id = shortId()
        const raw = await rawSession(port, id, version)
        raw.send(generate({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: '/'.repeat(65_400), qos: 0 }], ...(version === 5 ? { properties: {} } : {}) } as never, { protocolVersion: version }))
        // Mosquitto 2.0 refuses more than 200 levels itself as a malformed SUBSCRIBE: 5.0 DISCONNECT 0x81, 3.1.1 a close.
        const answer = await raw.nextPacket()
        if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x81 })
        else expect(answer).toBeNull()
        await raw.closed
        await broker.clientGone(id)
        expect(broker.received(id)).not.toContain('subscribe')
      }
      // 200 separators are Mosquitto's own limit: they pass, and the broker grants them.
      const id = shortId()
      const raw = await rawSession(port, id, 4)
      raw.send(generate({ cmd: 'subscribe', messageId: 6, subscriptions: [{ topic: '/'.repeat(200), qos: 0 }] }))
      expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', messageId: 6, granted: [0] })
      raw.destroy()
      await broker.clientGone(id)
      expect(broker.received(id)).toContain('subscribe')
    })

    it('CVE-2021-28166: closes a client that sends a CONNACK (Mosquitto NULL dereference)', async () => {
      const id = shortId()
      const closed = moat.stats.closedFor('forbidden_packet_type')
      const raw = await rawSession(port, id, 5)
      raw.send(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]))
      // A bare close, as a fixed Mosquitto closes a client that sends a CONNACK.
      expect(await raw.nextPacket()).toBeNull()
      await raw.closed
      expect(moat.stats.closedFor('forbidden_packet_type')).toBe(closed + 1)
      await broker.clientGone(id)
      expect(broker.logs!().filter((l) => l.includes(`CONNACK from ${id}`))).toEqual([])
    })

    it('CVE-2021-34432: closes a client that publishes to an empty topic (Mosquitto crash)', async () => {
      for (const [version, answer] of [[4, null], [5, 0x82]] as const) {
        const id = shortId()
        const raw = await rawSession(port, id, version)
        const props = version === 5 ? [0x00] : []
        raw.send(Buffer.from([0x30, 2 + props.length + 1, 0x00, 0x00, ...props, 0x78]))
        await raw.closed
        if (answer !== null) expect(raw.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: answer })
        await broker.clientGone(id)
        expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([])
      }
    })

    it('CVE-2017-7651: refuses a CONNECT that declares more than maxPacketSize, before buffering it', async () => {
      // Declares 200 MB; sends a few bytes of it.
      await neverDialled((r) => r.send(Buffer.from([0x10, ...varint(200_000_000), 0x00, 0x04, 0x4d, 0x51])), 4, 'packet_too_large')
    })

    it('CVE-2023-0809: refuses an initial packet that is not CONNECT, large or small, without dialling the broker', async () => {
      // Refused on the first byte: neither the declared size nor the rest of the packet is waited for.
      await neverDialled((r) => r.send(Buffer.from([0x30, ...varint(268_435_455), 0x00, 0x01])), 4, 'first_packet_not_connect')
      await neverDialled((r) => r.send(Buffer.from([0x82, ...varint(200_000), 0x00, 0x01])), 4, 'first_packet_not_connect')
      await neverDialled((r) => r.send(Buffer.from([0x82])), 4, 'first_packet_not_connect')
      await neverDialled((r) => r.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] })), 4, 'first_packet_not_connect')
    })

    it('CVE-2023-28366: answers a reused QoS 2 packet id itself; the broker sees the message once', async () => {
      for (const version of [4, 5] as const) {
        const id = shortId()
        const topic = `cve/28366/${uid('q2')}`
        const raw = await rawSession(port, id, version)
        raw.send(publish(topic, 2, 7, 'first', version))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'pubrec', messageId: 7 })
        // The trigger: more QoS 2 publishes with the same id, never answering the PUBREC.
        for (let i = 0; i < 5; i++) raw.send(publish(topic, 2, 7, `again ${i}`, version))
        for (let i = 0; i < 5; i++) expect(await raw.nextPacket()).toMatchObject({ cmd: 'pubrec', messageId: 7 })
        raw.send(generate({ cmd: 'pubrel', messageId: 7 }, { protocolVersion: version }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'pubcomp', messageId: 7 })
        // The id is free again after PUBCOMP: a new message with it goes through.
        raw.send(publish(topic, 2, 7, 'second', version))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'pubrec', messageId: 7 })
        raw.send(generate({ cmd: 'pubrel', messageId: 7 }, { protocolVersion: version }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'pubcomp', messageId: 7 })
        await barrier(raw, version)
        raw.destroy()
        await broker.clientGone(id)
        expect(broker.received(id).filter((r) => r === `publish ${topic}`)).toHaveLength(2)
        expect(spyInbox.messages.filter((m) => m.topic === topic).map((m) => String(m.payload))).toEqual(['first', 'second'])
      }
    })

    it('CVE-2021-41039: refuses a 5.0 CONNECT, will, PUBLISH or SUBSCRIBE carrying more than 128 user properties; 128 pass', async () => {
      const many = (n: number): Record<string, string[]> => ({ k: Array.from({ length: n }, (_, i) => `v${i}`) })
      // CONNECT: CONNACK 0x97 (Quota Exceeded), the broker never dialled; the same for a will.
      let raw = await neverDialled((r) => r.send(connectPacket(shortId(), 5, { properties: { userProperties: many(MAX_USER_PROPERTIES + 1) } })), 5, 'too_many_user_properties')
      expect(raw.packets[0]).toMatchObject({ cmd: 'connack', reasonCode: 0x97 })
      const will = { topic: 'cve/41039/will', payload: Buffer.from('w'), qos: 0, retain: false, properties: { userProperties: many(MAX_USER_PROPERTIES + 1) } }
      raw = await neverDialled((r) => r.send(connectPacket(shortId(), 5, { will })), 5, 'too_many_user_properties')
      expect(raw.packets[0]).toMatchObject({ cmd: 'connack', reasonCode: 0x97 })

      // PUBLISH: the client is closed with DISCONNECT 0x97; the message never reaches the broker.
      const id = shortId()
      const topic = `cve/41039/${uid('p')}`
      raw = await rawSession(port, id, 5)
      raw.send(generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false, properties: { userProperties: many(MAX_USER_PROPERTIES + 1) } }, { protocolVersion: 5 }))
      await raw.closed
      expect(raw.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x97 })
      await broker.clientGone(id)
      expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([])

      // SUBSCRIBE: the same; the broker sees no SUBSCRIBE.
      const sid = shortId()
      raw = await rawSession(port, sid, 5)
      raw.send(generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'cve/#', qos: 0 }], properties: { userProperties: many(MAX_USER_PROPERTIES + 1) } }, { protocolVersion: 5 }))
      await raw.closed
      expect(raw.packets.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x97 })
      await broker.clientGone(sid)
      expect(broker.received(sid).filter((r) => r.startsWith('subscribe'))).toEqual([])

      // 128 are honest traffic: the message and its properties reach the broker's subscriber whole.
      const ok = await rawSession(port, shortId(), 5)
      const okTopic = `cve/41039/${uid('ok')}`
      ok.send(generate({ cmd: 'publish', topic: okTopic, payload: Buffer.from('fine'), qos: 1, messageId: 3, retain: false, dup: false, properties: { userProperties: many(MAX_USER_PROPERTIES) } }, { protocolVersion: 5 }))
      expect(await ok.nextPacket()).toMatchObject({ cmd: 'puback', messageId: 3 })
      expect(String((await spyInbox.waitForTopic(okTopic)).payload)).toBe('fine')
      ok.destroy()
      expect(spyInbox.messages.filter((m) => m.topic.startsWith('cve/41039/') && m.topic !== okTopic)).toEqual([])
    })

    it('CVE-2023-3592: refuses a 5.0 CONNECT whose will carries a property a will may not have', async () => {
      // Will properties: a Topic Alias (0x23), which only a PUBLISH may carry.
      const willProps = [0x03, 0x23, 0x00, 0x01]
      const clientId = Buffer.from(shortId())
      const body = Buffer.concat([
        Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3c, 0x00]),
        Buffer.from([0x00, clientId.length]), clientId,
        Buffer.from(willProps), Buffer.from([0x00, 0x05]), Buffer.from('cve/w'), Buffer.from([0x00, 0x01, 0x78]),
      ])
      const raw = await neverDialled((r) => r.send(Buffer.concat([Buffer.from([0x10, body.length]), body])), 5, 'malformed_packet')
      // A malformed CONNECT: closed without a CONNACK, as a fixed Mosquitto closes it.
      expect(raw.packets).toEqual([])
    })
  })

  describe(`virtual patching of CVE-2020-13849 (keepalive abuse), in front of ${kind}`, () => {
    let broker: TestBroker
    let moat: Moat

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { limits: limitsFrom({ maxKeepalive: '1s' }) })
    })

    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    it('CVE-2020-13849: a 3.1.1 client asking for no keepalive (or 18 hours) is closed when idle past limits.maxKeepalive, and so is its broker connection', async () => {
      for (const keepalive of [0, 65_535]) {
        const id = shortId()
        const idle = moat.stats.closedFor('idle_timeout')
        const raw = new RawClient(port(), 4)
        await raw.connected()
        raw.send(connectPacket(id, 4, { keepalive }))
        expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 0 })
        // Then it says nothing at all: Moat's idle timer (1.5 × the 1 s cap) closes it.
        await raw.closed
        expect(moat.stats.closedFor('idle_timeout')).toBe(idle + 1)
        // The broker's end goes too: the idle connection does not hold a broker slot.
        await broker.clientGone(id)
      }
    })

    function port(): number {
      return moat.address().port
    }
  })
}
