/**
 * Byte-level transparency: each scenario is one client's exact bytes, sent once straight to a real
 * Mosquitto and once through Moat in front of it (a transparent configuration: anonymous clients,
 * no ACL, the largest packet cap, virtual patches as each scenario says), and what the client
 * receives must be the same bytes both times. Where the broker's view matters (a will published or
 * not), an observer connected to the broker directly sees the same both times as well.
 *
 * These are the encodings stock clients really send (mosquitto_pub's and paho's short 5.0
 * DISCONNECT, short acks, MQTT 3.1's DUP bits) and the edges Moat checks (topic depth, $ topics).
 */
import { generate } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { MAX_SIZE } from '../../src/config/units.js'
import { ALL_VIRTUAL_PATCHES } from '../../src/checks/virtual-patches.js'
import { startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'
import { mosquittoPath } from '../helpers/mosquitto.js'
import { varint } from '../helpers/bytes.js'

const vint = (n: number): Buffer => Buffer.from(varint(n))

/** One scenario: the frames a client sends, in steps (each step waits for `expect` answer packets first). */
interface Step { send: Buffer, answers: number }
interface Scenario {
  name: string
  version: ProtocolLevel
  /** Steps after the CONNECT; `tag` makes topics and ids unique per run. */
  steps: (tag: string) => Step[]
  /** The client closes after its last step (true) or waits for the server to close (false). */
  clientCloses?: boolean
  will?: boolean
  /** A client id of 36 bytes (a UUID's length). */
  longId?: boolean
  /** Moat with every virtual patch off (a broker that is not affected). */
  unpatched?: boolean
}

const props5 = (version: ProtocolLevel): Buffer => Buffer.from(version === 5 ? [0] : [])

function publish(version: ProtocolLevel, topic: string, qos: 0 | 1 | 2, id: number, flags = 0): Buffer {
  const t = Buffer.from(topic)
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, qos > 0 ? Buffer.from([id >> 8, id & 0xff]) : Buffer.alloc(0), props5(version), Buffer.from('payload')])
  return Buffer.concat([Buffer.from([0x30 | (qos << 1) | flags]), vint(body.length), body])
}

function subscribe(version: ProtocolLevel, filter: string, qos: number, id: number, first = 0x82): Buffer {
  const f = Buffer.from(filter)
  const body = Buffer.concat([Buffer.from([id >> 8, id & 0xff]), props5(version), Buffer.from([f.length >> 8, f.length & 0xff]), f, Buffer.from([qos])])
  return Buffer.concat([Buffer.from([first]), vint(body.length), body])
}


/** A 5.0 QoS 1 PUBLISH carrying `count` User Properties. */
function publishWithUserProperties(topic: string, count: number): Buffer {
  const pair = Buffer.from([0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76]) // k = v
  const props = Buffer.concat(Array.from({ length: count }, () => pair))
  const t = Buffer.from(topic)
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, Buffer.from([0x00, 0x09]), vint(props.length), props, Buffer.from('p')])
  return Buffer.concat([Buffer.from([0x32]), vint(body.length), body])
}

/** A 5.0 QoS 0 PUBLISH whose one User Property value is `value`. */
function publishWithProperty(topic: string, value: Buffer): Buffer {
  const props = Buffer.concat([Buffer.from([0x26, 0x00, 0x01, 0x6b, value.length >> 8, value.length & 0xff]), value])
  const t = Buffer.from(topic)
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, vint(props.length), props, Buffer.from('p')])
  return Buffer.concat([Buffer.from([0x30]), vint(body.length), body])
}

/** A 5.0 SUBSCRIBE whose one User Property value is `value`. */
function subscribeWithProperty(filter: string, value: Buffer): Buffer {
  const props = Buffer.concat([Buffer.from([0x26, 0x00, 0x01, 0x6b, value.length >> 8, value.length & 0xff]), value])
  const f = Buffer.from(filter)
  const body = Buffer.concat([Buffer.from([0x00, 0x01]), vint(props.length), props, Buffer.from([f.length >> 8, f.length & 0xff]), f, Buffer.from([0x01])])
  return Buffer.concat([Buffer.from([0x82]), vint(body.length), body])
}

const step = (send: Buffer | number[], answers = 0): Step => ({ send: Buffer.isBuffer(send) ? send : Buffer.from(send), answers })

const scenarios: Scenario[] = [
  // 5.0 DISCONNECT may omit the reason code and the properties (5.0 3.14.2.1): the will is not sent.
  { name: '5.0 DISCONNECT e0 00 (mosquitto_pub and paho on every clean exit): will discarded', version: 5, will: true, steps: () => [step([0xe0, 0x00])] },
  { name: '5.0 DISCONNECT e0 01 00: will discarded', version: 5, will: true, steps: () => [step([0xe0, 0x01, 0x00])] },
  { name: '5.0 DISCONNECT e0 01 04 (with will message): will published', version: 5, will: true, steps: () => [step([0xe0, 0x01, 0x04])] },
  { name: '5.0 DISCONNECT e0 02 00 00 (long form)', version: 5, will: true, steps: () => [step([0xe0, 0x02, 0x00, 0x00])] },
  // A Session Expiry Interval set on DISCONNECT after a CONNECT with none: the broker answers 0x82.
  { name: '5.0 DISCONNECT that sets a Session Expiry Interval: the broker\'s DISCONNECT 0x82 reaches the client', version: 5, will: true, steps: () => [step([0xe0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01])] },
  { name: '3.1.1 DISCONNECT e0 00: will discarded', version: 4, will: true, steps: () => [step([0xe0, 0x00])] },
  { name: 'no DISCONNECT, the client just closes: will published', version: 5, will: true, clientCloses: true, steps: () => [] },
  // QoS 2 from the client, the flow ended by short and long PUBREL forms.
  { name: '5.0 QoS 2 publish, PUBREL short form (62 02)', version: 5, steps: (tag) => [step(publish(5, `${tag}/q2`, 2, 7), 1), step([0x62, 0x02, 0x00, 0x07], 1), step([0xe0, 0x00])] },
  { name: '5.0 QoS 2 publish, PUBREL with reason code only (62 03 .. 00)', version: 5, steps: (tag) => [step(publish(5, `${tag}/q2`, 2, 8), 1), step([0x62, 0x03, 0x00, 0x08, 0x00], 1), step([0xe0, 0x00])] },
  { name: '5.0 QoS 2 publish, PUBREL with reason and empty properties (62 04 .. 00 00)', version: 5, steps: (tag) => [step(publish(5, `${tag}/q2`, 2, 9), 1), step([0x62, 0x04, 0x00, 0x09, 0x00, 0x00], 1), step([0xe0, 0x00])] },
  // Deliveries the client acknowledges in each short form.
  { name: '5.0 QoS 1 delivery acknowledged with PUBACK 40 02', version: 5, steps: (tag) => [step(subscribe(5, `${tag}/d`, 1, 1), 1), step(publish(5, `${tag}/d`, 1, 2), 2), step([0x40, 0x02, 0x00, 0x01]), step([0xc0, 0x00], 1), step([0xe0, 0x00])] },
  { name: '5.0 QoS 1 delivery acknowledged with PUBACK 40 03 .. 00', version: 5, steps: (tag) => [step(subscribe(5, `${tag}/d`, 1, 1), 1), step(publish(5, `${tag}/d`, 1, 2), 2), step([0x40, 0x03, 0x00, 0x01, 0x00]), step([0xc0, 0x00], 1), step([0xe0, 0x00])] },
  { name: '5.0 QoS 2 delivery acknowledged with PUBREC 50 02 and PUBCOMP 70 02', version: 5, steps: (tag) => [step(subscribe(5, `${tag}/d`, 2, 1), 1), step(publish(5, `${tag}/d`, 2, 3), 1), step([0x62, 0x02, 0x00, 0x03], 2), step([0x50, 0x02, 0x00, 0x01], 1), step([0x70, 0x02, 0x00, 0x01]), step([0xc0, 0x00], 1), step([0xe0, 0x00])] },
  { name: '5.0 QoS 2 delivery acknowledged with PUBREC 50 03 .. 00 and PUBCOMP 70 03 .. 00', version: 5, steps: (tag) => [step(subscribe(5, `${tag}/d`, 2, 1), 1), step(publish(5, `${tag}/d`, 2, 3), 1), step([0x62, 0x02, 0x00, 0x03], 2), step([0x50, 0x03, 0x00, 0x01, 0x00], 1), step([0x70, 0x03, 0x00, 0x01, 0x00]), step([0xc0, 0x00], 1), step([0xe0, 0x00])] },
  // MQTT 3.1: a PUBREL, SUBSCRIBE or UNSUBSCRIBE may carry DUP.
  { name: 'MQTT 3.1 PUBREL with the DUP bit (6a 02) is answered with PUBCOMP', version: 3, steps: (tag) => [step(publish(3, `${tag}/q2`, 2, 5), 1), step([0x6a, 0x02, 0x00, 0x05], 1), step([0xe0, 0x00])] },
  { name: 'MQTT 3.1 SUBSCRIBE with the DUP bit (8a) is answered with SUBACK', version: 3, steps: (tag) => [step(subscribe(3, `${tag}/s`, 1, 4, 0x8a), 1), step([0xe0, 0x00])] },
  { name: 'MQTT 3.1 client id of 36 bytes (a UUID) is taken', version: 3, longId: true, steps: () => [step([0xc0, 0x00], 1), step([0xe0, 0x00])] },
  // Topic depth: 200 separators are Mosquitto's own limit.
  { name: 'a topic and a filter of 200 separators pass', version: 5, steps: (tag) => [step(subscribe(5, `${tag}${'/x'.repeat(199)}/+`, 1, 1), 1), step(publish(5, `${tag}${'/x'.repeat(200)}`, 1, 2), 2), step([0x40, 0x02, 0x00, 0x01]), step([0xe0, 0x00])] },
  { name: 'a 5.0 publish of 201 separators is refused as the broker refuses it', version: 5, steps: (tag) => [step(publish(5, `${tag}${'/x'.repeat(201)}`, 1, 2), 1)] },
  { name: 'a 3.1.1 filter of 201 separators is refused as the broker refuses it', version: 4, steps: (tag) => [step(subscribe(4, `${tag}${'/x'.repeat(201)}`, 0, 2), 1)] },
  // Strings the broker refuses (control characters, non-characters): its answer depends on the field.
  { name: '5.0 publish topic with U+0001', version: 5, steps: (tag) => [step(publish(5, `${tag}/a\u0001b`, 0, 0), 1)] },
  { name: '3.1.1 publish topic with U+007F', version: 4, steps: (tag) => [step(publish(4, `${tag}/a\u007fb`, 0, 0))] },
  { name: '5.0 publish with a User Property holding U+FDD0', version: 5, steps: (tag) => [step(publishWithProperty(`${tag}/p`, Buffer.from('a\ufdd0')))] },
  { name: '5.0 subscribe filter with U+0085', version: 5, steps: (tag) => [step(subscribe(5, `${tag}/\u0085`, 0, 1), 1)] },
  { name: '5.0 subscribe with a User Property holding U+0001', version: 5, steps: (tag) => [step(subscribeWithProperty(`${tag}/s`, Buffer.from('\u0001')))] },
  // Where Moat answers for the broker, the same code.
  { name: '5.0 QoS 1 publish with packet id 0', version: 5, steps: (tag) => [step(publish(5, `${tag}/id0`, 1, 0), 1)] },
  { name: '5.0 publish to $SYS reaches the broker, which refuses it (0x87)', version: 5, steps: () => [step(publish(5, '$SYS/moat/test', 1, 3), 1), step([0xe0, 0x00])] },
  { name: '5.0 publish to $TopicA with the CVE-2018-12543 patch off', version: 5, unpatched: true, steps: (tag) => [step(publish(5, `$TopicA/${tag}`, 1, 3), 1), step([0xe0, 0x00])] },
  { name: '5.0 publish with 200 User Properties with the CVE-2021-41039 patch off', version: 5, unpatched: true, steps: (tag) => [step(publishWithUserProperties(`${tag}/props`, 200), 1), step([0xe0, 0x00])] },
  { name: '3.1.1 publish to $TopicA with the CVE-2018-12543 patch off', version: 4, unpatched: true, steps: (tag) => [step(publish(4, `$TopicA/${tag}`, 1, 3), 1), step([0xe0, 0x00])] },
]

const has = mosquittoPath() !== null
if (!has && process.env.CI === 'true') throw new Error('Mosquitto is required under CI')

describe.skipIf(!has)('byte-level transparency against Mosquitto itself', () => {
  let broker: TestBroker
  let moat: Moat
  let unpatched: Moat
  let observer: MqttClient
  let wills: Inbox

  beforeAll(async () => {
    broker = await startBroker('mosquitto')
    moat = await startMoat(broker, { limits: { maxPacketSize: MAX_SIZE } })
    unpatched = await startMoat(broker, { limits: { maxPacketSize: MAX_SIZE }, virtualPatches: { ...ALL_VIRTUAL_PATCHES, 'cve-2017-7650': false, 'cve-2018-12543': false, 'cve-2019-11779': false, 'cve-2021-41039': false } })
    observer = await connect(broker.port, { clientId: uid('observer') })
    wills = new Inbox(observer)
    await observer.subscribeAsync('will/#')
  })

  afterAll(async () => {
    await observer?.endAsync()
    await unpatched?.shutdown(0)
    await moat?.shutdown(0)
    await broker?.stop()
  })

  /** Runs `s` against `port`: the client's received bytes, and whether its will reached the broker's subscribers. */
  async function run(s: Scenario, port: number, tag = uid('t')): Promise<{ bytes: Buffer, will: boolean }> {
    const seen = wills.messages.length
    const raw = new RawClient(port, s.version)
    await raw.connected()
    const willTopic = `will/${tag}`
    const connectExtra = s.will ? { will: { topic: willTopic, payload: Buffer.from('gone'), qos: 0, retain: false, ...(s.version === 5 ? { properties: {} } : {}) } } : {}
    const clientId = s.longId ? `c${tag}-${port}`.padEnd(36, 'x') : `c${tag}-${port}`
    raw.send(generate(connectPacket(clientId, s.version, { ...connectExtra, ...(s.version === 5 ? { properties: {} } : {}) }), { protocolVersion: s.version }))
    let expected = 1
    await raw.nextPacket(0)
    for (const { send, answers } of s.steps(tag)) {
      raw.send(send)
      for (let i = 0; i < answers; i++) await raw.nextPacket(expected++)
    }
    if (s.clientCloses) raw.destroy()
    await raw.closed.then(() => undefined, () => undefined)
    // Closed on the client's or the server's initiative; the will (if any) is published by then or never.
    if (s.will) await broker.clientGone(clientId)
    // A barrier through the broker: anything published before it has reached the observer.
    const barrier = `will/barrier-${clientId}`
    await observer.publishAsync(barrier, 'b')
    await wills.waitForTopic(barrier)
    return { bytes: Buffer.concat(raw.bytes), will: wills.messages.slice(seen).some((m) => m.topic === willTopic) }
  }

  it.each(scenarios)('$name: the same bytes through Moat as from the broker', async (s) => {
    // The same client id and topics both times (they are in the bytes), one run after the other.
    const tag = uid('t')
    const direct = await run(s, broker.port, tag)
    const through = await run(s, (s.unpatched ? unpatched : moat).address().port, tag)
    expect(through.bytes.toString('hex')).toBe(direct.bytes.toString('hex'))
    expect(through.will).toBe(direct.will)
  })

  it('a 5.0 CONNACK is the broker\'s own bytes; with a real cap (256 KiB) they gain only a Maximum Packet Size at the end', async () => {
    const capped = await startMoat(broker, { limits: { maxPacketSize: 256 * 1024 } })
    try {
      const connacks: Buffer[] = []
      for (const port of [broker.port, moat.address().port, capped.address().port]) {
        const raw = new RawClient(port, 5)
        await raw.connected()
        raw.send(generate(connectPacket(uid('ca'), 5, { properties: {} }), { protocolVersion: 5 }))
        await raw.nextPacket(0)
        connacks.push(Buffer.concat(raw.bytes))
        raw.destroy()
      }
      const [direct, transparent, withCap] = connacks as [Buffer, Buffer, Buffer]
      expect(transparent).toEqual(direct)
      const added = Buffer.from([0x27, 0x00, 0x04, 0x00, 0x00])
      expect(withCap).toEqual(Buffer.concat([Buffer.from([direct[0]!, direct[1]! + 5, direct[2]!, direct[3]!, direct[4]! + 5]), direct.subarray(5), added]))
    } finally {
      await capped.shutdown(0)
    }
  })

  it('the scenarios show what they claim against the broker itself', async () => {
    const byName = (prefix: string): Scenario => scenarios.find((s) => s.name.startsWith(prefix))!
    expect((await run(byName('5.0 DISCONNECT e0 00'), broker.port)).will).toBe(false)
    expect((await run(byName('5.0 DISCONNECT e0 01 04'), broker.port)).will).toBe(true)
    expect((await run(byName('no DISCONNECT'), broker.port)).will).toBe(true)
    expect((await run(byName('5.0 DISCONNECT that sets'), broker.port)).bytes.subarray(-3)).toEqual(Buffer.from([0xe0, 0x01, 0x82]))
    // PUBCOMP 70 02 00 05 after the PUBREC: the 3.1 PUBREL with DUP was taken.
    expect((await run(byName('MQTT 3.1 PUBREL'), broker.port)).bytes.subarray(-4)).toEqual(Buffer.from([0x70, 0x02, 0x00, 0x05]))
  })
})
