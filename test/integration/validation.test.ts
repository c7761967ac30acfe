/**
 * Every protocol validation rule, shown from both sides: the client gets the right answer (a
 * CONNACK or DISCONNECT reason code where its version has one, and a closed connection), and the
 * broker received nothing it should not have: checked with the broker's own record of what each
 * client sent (after the barrier `clientGone`) and with a subscriber on '#' connected to the broker
 * directly.
 */
import { generate, type IConnackPacket, type IDisconnectPacket } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const MAX_PACKET = 64 * 1024

function publish(topic: string | Buffer, version: ProtocolLevel, qos: 0 | 1 = 0): Buffer {
  if (typeof topic === 'string') {
    return generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, messageId: qos ? 1 : undefined, retain: false, dup: false }, { protocolVersion: version })
  }
  // Hand-made, so the topic bytes can be anything (mqtt-packet would encode a string).
  const props = version === 5 ? Buffer.from([0]) : Buffer.alloc(0)
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, props, Buffer.from('x')])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}

function subscribeRaw(filter: Buffer, version: ProtocolLevel, first = 0x82): Buffer {
  const props = version === 5 ? Buffer.from([0]) : Buffer.alloc(0)
  const body = Buffer.concat([Buffer.from([0, 7]), props, Buffer.from([filter.length >> 8, filter.length & 0xff]), filter, Buffer.from([0])])
  return Buffer.concat([Buffer.from([first, body.length]), body])
}

interface Violation {
  name: string
  bytes: (version: ProtocolLevel, id: string) => Buffer
  /**
   * The 5.0 DISCONNECT reason code, or null for a bare close: what Mosquitto 2.0 answers itself
   * (checked against it below), except where `policy` says Moat refuses what the broker would take.
   * 3.1.1 clients are just closed.
   */
  reason: number | null
  counted: string
  /** Refused by Moat's own rule or limit, not one the broker applies (its answer differs on purpose). */
  policy?: string
}

const violations: Violation[] = [
  { name: 'a second CONNECT [MQTT-3.1.0-2]', bytes: (v, id) => generate(connectPacket(id, v)), reason: null, counted: 'duplicate_connect' },
  { name: 'reserved flag bits wrong in SUBSCRIBE [MQTT-2.2.2-1] [MQTT-2.2.2-2]', bytes: (v) => subscribeRaw(Buffer.from('a/b'), v, 0x80), reason: 0x81, counted: 'reserved_flags' },
  { name: 'reserved flag bits wrong in PINGREQ [MQTT-2.2.2-2]', bytes: () => Buffer.from([0xc1, 0x00]), reason: null, counted: 'reserved_flags', policy: 'Mosquitto does not check the flags of PINGREQ and answers it; the spec says close' },
  { name: 'CONNACK from a client', bytes: () => Buffer.from([0x20, 0x02, 0x00, 0x00]), reason: null, counted: 'forbidden_packet_type' },
  { name: 'SUBACK from a client', bytes: () => Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]), reason: null, counted: 'forbidden_packet_type', policy: 'server-only packet type: Mosquitto 2.0 ignores it from a client' },
  { name: 'UNSUBACK from a client', bytes: () => Buffer.from([0xb0, 0x02, 0x00, 0x01]), reason: null, counted: 'forbidden_packet_type', policy: 'server-only packet type: Mosquitto 2.0 ignores it from a client' },
  { name: 'PINGRESP from a client', bytes: () => Buffer.from([0xd0, 0x00]), reason: null, counted: 'forbidden_packet_type', policy: 'server-only packet type: Mosquitto 2.0 ignores it from a client' },
  { name: 'reserved packet type 0', bytes: () => Buffer.from([0x00, 0x00]), reason: 0x82, counted: 'forbidden_packet_type' },
  { name: 'a PUBLISH topic with a + wildcard [MQTT-3.3.2-2]', bytes: (v, id) => publish(`${id}/+/bad`, v), reason: 0x82, counted: 'invalid_topic' },
  { name: 'a PUBLISH topic with a # wildcard [MQTT-3.3.2-2]', bytes: (v, id) => publish(`${id}/#`, v), reason: 0x82, counted: 'invalid_topic' },
  { name: 'a PUBLISH topic with invalid UTF-8 [MQTT-1.5.4-1]', bytes: (v, id) => publish(Buffer.concat([Buffer.from(`${id}/`), Buffer.from([0xc3, 0x28])]), v), reason: 0x81, counted: 'malformed_packet' },
  { name: 'a PUBLISH topic with U+0000 [MQTT-1.5.4-2]', bytes: (v, id) => publish(Buffer.from(`${id}/a\u0000b`), v), reason: 0x81, counted: 'malformed_packet' },
  { name: 'a PUBLISH with QoS 3 [MQTT-3.3.1-4]', bytes: (v, id) => { const b = publish(`${id}/q3`, v); b[0] = 0x36; return b }, reason: 0x81, counted: 'malformed_packet' },
  { name: 'a SUBSCRIBE with an invalid filter [MQTT-4.7.1-1]', bytes: (v) => subscribeRaw(Buffer.from('a/#/b'), v), reason: 0x81, counted: 'invalid_topic_filter' },
  { name: 'a SUBSCRIBE filter with invalid UTF-8 [MQTT-1.5.4-1]', bytes: (v) => subscribeRaw(Buffer.from([0x61, 0xff]), v), reason: 0x81, counted: 'malformed_packet' },
  { name: 'an UNSUBSCRIBE with an invalid filter [MQTT-4.7.1-2]', bytes: (v) => generate({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['a+'] }, { protocolVersion: v }), reason: 0x81, counted: 'invalid_topic_filter' },
  { name: 'a malformed Remaining Length (five bytes) [MQTT-1.5.5]', bytes: () => Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), reason: null, counted: 'malformed_packet' },
  { name: `a packet over maxPacketSize (${MAX_PACKET} B)`, bytes: (v, id) => generate({ cmd: 'publish', topic: `${id}/big`, payload: Buffer.alloc(MAX_PACKET), qos: 0, retain: false, dup: false }, { protocolVersion: v }), reason: 0x95, counted: 'packet_too_large', policy: 'limits.maxPacketSize is Moat\'s cap' },
]

/** A CONNECT with its client id (the last field) replaced by `id`, bytes as given. */
function connectWithId(version: ProtocolLevel, id: Buffer): Buffer {
  const frame = generate(connectPacket('x', version))
  const body = Buffer.concat([frame.subarray(2, frame.length - 3), Buffer.from([id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

/** CONNECTs the broker refuses itself: Moat must answer each as the broker would, before dialling it. */
const badConnects: Array<{ name: string, version: ProtocolLevel, bytes: () => Buffer }> = [
  { name: 'a CONNECT with an unsupported protocol level', version: 4, bytes: () => { const f = generate(connectPacket(uid('level'), 4)); f[8] = 6; return f } },
  { name: 'a CONNECT with a bad protocol name', version: 4, bytes: () => { const f = generate(connectPacket(uid('name'), 4)); f.write('MQTX', 4, 'latin1'); return f } },
  { name: 'a CONNECT whose reserved connect flag is set', version: 4, bytes: () => { const f = generate(connectPacket(uid('cflag'), 4)); f[9] = f[9]! | 0x01; return f } },
  { name: 'a 5.0 CONNECT with a byte after its last field', version: 5, bytes: () => { const f = generate(connectPacket(uid('v5'), 5)); return Buffer.concat([Buffer.from([0x10, f[1]! + 1]), f.subarray(2), Buffer.from([0])]) } },
  ...([3, 4, 5] as const).flatMap((version) => [
    { name: `a ${version} CONNECT whose client id holds U+0001`, version, bytes: () => connectWithId(version, Buffer.from('dev\u0001x')) },
    { name: `a ${version} CONNECT whose client id holds U+0085`, version, bytes: () => connectWithId(version, Buffer.from('dev\u0085x')) },
    { name: `a ${version} CONNECT whose client id holds U+FFFF`, version, bytes: () => connectWithId(version, Buffer.from('dev\uffffx')) },
    { name: `a ${version} CONNECT whose will topic has a wildcard`, version, bytes: () => generate(connectPacket(uid('will'), version, { will: { topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false, ...(version === 5 ? { properties: {} } : {}) } }), { protocolVersion: version }) },
  ]),
  { name: 'a 3.1 CONNECT with an empty client id', version: 3, bytes: () => connectWithId(3, Buffer.alloc(0)) },
]

/** What a raw session received after its CONNACK, as bytes. */
function bytesAfterConnack(raw: RawClient): Buffer {
  const all = Buffer.concat(raw.bytes)
  return all.subarray(2 + all[1]!)
}

for (const kind of brokerKinds()) {
  describe(`protocol validation in front of ${kind}`, () => {
    let broker: TestBroker
    let moat: Moat
    let port: number
    let spy: MqttClient
    let spyInbox: Inbox

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { limits: { maxPacketSize: MAX_PACKET, connectTimeoutMs: 400 } })
      port = moat.address().port
      // The broker-side witness: connected to the broker directly, it sees every publish that got through.
      spy = await connect(broker.port, { clientId: uid('spy') })
      spyInbox = new Inbox(spy)
      await spy.subscribeAsync('#')
    })

    afterAll(async () => {
      await spy?.endAsync()
      await moat?.shutdown(0)
      await broker?.stop()
    })

    /** Nothing the spy saw came from a topic under `prefix`, except the ones listed. */
    function spySaw(prefix: string): string[] {
      return spyInbox.messages.filter((m) => m.topic.startsWith(prefix)).map((m) => m.topic)
    }

    describe('before CONNECT: the broker is never dialled', () => {
      async function expectNeverDialled(send: (raw: RawClient) => void, answer: Array<Record<string, unknown>>, counted: string, version: ProtocolLevel = 4): Promise<void> {
        const connections = broker.connections()
        const dials = moat.stats.upstreamConnects
        const counter = moat.stats.closedFor(counted as never)
        const raw = new RawClient(port, version)
        await raw.connected()
        send(raw)
        await raw.closed
        expect(raw.packets).toEqual(answer.map((p) => expect.objectContaining(p)))
        expect(moat.stats.upstreamConnects).toBe(dials)
        expect(broker.connections()).toBe(connections)
        expect(moat.stats.closedFor(counted as never)).toBe(counter + 1)
      }

      it('closes a client whose first packet is not CONNECT [MQTT-3.1.0-1]', async () => {
        await expectNeverDialled((raw) => raw.send(publish('x/first', 4)), [], 'first_packet_not_connect')
      })

      it('closes a CONNECT with a bad protocol name, without a CONNACK [MQTT-3.1.2-1]', async () => {
        const frame = generate(connectPacket(uid('name'), 4))
        frame.write('MQTX', 4, 'latin1')
        await expectNeverDialled((raw) => raw.send(frame), [], 'invalid_protocol_name')
      })

      it('answers an unsupported protocol level with CONNACK 0x01, then closes [MQTT-3.1.2-2]', async () => {
        const frame = generate(connectPacket(uid('level'), 4))
        frame[8] = 6 // protocol level byte after 0x10 len 0x00 0x04 'MQTT'
        await expectNeverDialled((raw) => raw.send(frame), [{ cmd: 'connack', returnCode: 1 }], 'unsupported_protocol_version')
      })

      it('closes a CONNECT whose reserved header flags are set [MQTT-2.2.2-2]', async () => {
        const frame = generate(connectPacket(uid('flags'), 4))
        frame[0] = 0x11
        await expectNeverDialled((raw) => raw.send(frame), [], 'reserved_flags')
      })

      it('closes a CONNECT whose reserved connect flag is set [MQTT-3.1.2-3]', async () => {
        const frame = generate(connectPacket(uid('cflag'), 4))
        frame[9] = frame[9]! | 0x01
        await expectNeverDialled((raw) => raw.send(frame), [], 'malformed_packet')
      })

      it('closes a CONNECT whose client id is not valid UTF-8 [MQTT-1.5.4-1]', async () => {
        const frame = generate(connectPacket('abcd', 4))
        frame[frame.length - 1] = 0xff
        await expectNeverDialled((raw) => raw.send(frame), [], 'malformed_packet')
      })

      it('closes a CONNECT whose will topic has a wildcard', async () => {
        const frame = generate(connectPacket(uid('will'), 4, { will: { topic: 'a/#', payload: Buffer.from('x'), qos: 0, retain: false } }))
        await expectNeverDialled((raw) => raw.send(frame), [], 'invalid_topic')
      })

      it('closes a malformed 5.0 CONNECT without a CONNACK, as Mosquitto does', async () => {
        await expectNeverDialled((raw) => raw.send(badConnects.find((c) => c.name.startsWith('a 5.0 CONNECT with a byte'))!.bytes()), [], 'malformed_packet', 5)
      })

      if (kind === 'mosquitto') {
        it.each(badConnects)('answers $name byte for byte as Mosquitto itself does, without dialling it', async ({ bytes, version }) => {
          const answers: Buffer[] = []
          for (const target of [broker.port, port]) {
            const raw = new RawClient(target, version)
            await raw.connected()
            raw.send(bytes())
            await raw.closed
            answers.push(Buffer.concat(raw.bytes))
          }
          expect(answers[1]).toEqual(answers[0])
        })
      }

      it('closes a client that declares a huge CONNECT', async () => {
        await expectNeverDialled((raw) => raw.send(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])), [], 'packet_too_large')
      })

      it('closes a client that sends no complete CONNECT within connectTimeout (slowloris)', async () => {
        const frame = generate(connectPacket(uid('slow'), 4))
        await expectNeverDialled((raw) => raw.send(frame.subarray(0, 5)), [], 'connect_timeout')
      })
    })

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      describe(`after CONNECT, MQTT level ${version}`, () => {
        it.each(violations)('closes a client for $name; the broker sees nothing from it after', async ({ bytes, reason, counted }) => {
          const id = uid(`v${version}`)
          const counter = moat.stats.closedFor(counted as never)
          const raw = await rawSession(port, id, version)
          // A valid publish before and after the violation, in the same write: the one before must
          // arrive, the violation and everything after it must not.
          raw.send(Buffer.concat([publish(`${id}/before`, version), bytes(version, id), publish(`${id}/after`, version)]))
          const answer = await raw.nextPacket()
          if (version === 5 && reason !== null) {
            expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: reason } satisfies Partial<IDisconnectPacket>)
            // The short form Mosquitto uses: e0 01 RC.
            expect(bytesAfterConnack(raw)).toEqual(Buffer.from([0xe0, 0x01, reason]))
          } else {
            expect(answer).toBeNull()
          }
          await raw.closed
          await broker.clientGone(id)
          await expect.poll(() => broker.received(id)).toEqual(['connect', `publish ${id}/before`])
          await spyInbox.waitForTopic(`${id}/before`)
          expect(spySaw(id)).toEqual([`${id}/before`])
          expect(moat.stats.closedFor(counted as never)).toBe(counter + 1)
        })

        if (kind === 'mosquitto') {
          it.each(violations.filter((v) => v.policy === undefined))('answers $name byte for byte as Mosquitto itself does', async ({ bytes }) => {
            const answers: Buffer[] = []
            for (const target of [broker.port, port]) {
              const id = uid(`same${version}`)
              const raw = await rawSession(target, id, version)
              raw.send(bytes(version, id))
              await raw.closed
              answers.push(bytesAfterConnack(raw))
            }
            expect(answers[1]).toEqual(answers[0])
          })
        }

        it('relays a well-formed PINGREQ and the broker\'s PINGRESP', async () => {
          const id = uid('ping')
          const raw = await rawSession(port, id, version)
          raw.send(Buffer.from([0xc0, 0x00]))
          expect(await raw.nextPacket()).toMatchObject({ cmd: 'pingresp' })
          raw.destroy()
          await broker.clientGone(id)
          await expect.poll(() => broker.received(id)).toEqual(['connect', 'pingreq'])
        })

        if (version === 4) {
          it('closes a client that sends AUTH, which only exists in 5.0', async () => {
            const id = uid('auth')
            const raw = await rawSession(port, id, version)
            raw.send(Buffer.from([0xf0, 0x00]))
            expect(await raw.nextPacket()).toBeNull()
            await broker.clientGone(id)
            await expect.poll(() => broker.received(id)).toEqual(['connect'])
          })
        }
      })
    }

    it('closes only the offending client: its neighbours keep working', async () => {
      const topic = uid('neighbour')
      const good = await connect(port, { clientId: uid('good') })
      const inbox = new Inbox(good)
      await good.subscribeAsync(`${topic}/#`)
      const bad = await rawSession(port, uid('bad'))
      bad.send(Buffer.from([0x00, 0x00]))
      await bad.closed
      await good.publishAsync(`${topic}/still`, 'alive', { qos: 1 })
      const [message] = await inbox.waitFor(1)
      expect(message!.topic).toBe(`${topic}/still`)
      await good.endAsync()
    })

    if (brokerVersions(kind).includes(5)) it('passes the broker\'s 5.0 CONNACK through untouched', async () => {
      const raw = new RawClient(port, 5)
      await raw.connected()
      raw.send(connectPacket(uid('ok5'), 5))
      expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', reasonCode: 0 } satisfies Partial<IConnackPacket>)
      raw.destroy()
    })
  })
}
