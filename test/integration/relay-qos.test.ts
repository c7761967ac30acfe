/**
 * Honest traffic passes untouched: QoS 0, 1 and 2 in both directions, retained messages, unsubscribe
 * and a 1 MiB payload, byte-identical, for every broker and protocol level, directly and through Moat.
 */
import { randomBytes } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import { expect, it } from 'vitest'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { relayTargets } from '../helpers/targets.js'

/** Random bytes that include 0x00, 0xff and invalid UTF-8: payloads are binary. */
function payload(size = 64): Buffer {
  return Buffer.concat([Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x00]), randomBytes(size)])
}

relayTargets('relay', [3, 4, 5], (target, protocolVersion) => {
  const clients: MqttClient[] = []
  async function client(options: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
    const c = await connect(target().port, { protocolVersion, ...options })
    clients.push(c)
    return c
  }
  async function endAll(): Promise<void> {
    await Promise.all(clients.splice(0).map((c) => c.endAsync()))
  }

  for (const qos of [0, 1, 2] as const) {
    it(`delivers QoS ${qos} byte-identical, with a unicode topic`, async () => {
      const topic = `${uid('qos')}/温度/ü`
      const sub = await client()
      const inbox = new Inbox(sub)
      await sub.subscribeAsync(topic, { qos })
      const pub = await client()
      const sent = [payload(), payload(300), Buffer.alloc(0)]
      for (const p of sent) await pub.publishAsync(topic, p, { qos })
      const got = await inbox.waitFor(sent.length)
      got.forEach((m, i) => {
        expect(m.topic).toBe(topic)
        expect(m.payload.equals(sent[i]!)).toBe(true)
        expect(m.packet.qos).toBe(qos)
      })
      await endAll()
    })
  }

  it('relays each direction on its own: client→broker and broker→client', async () => {
    const topic = uid('dir')
    const port = target().port
    const brokerPort = target().broker.port
    // Published through the target, received directly on the broker.
    const direct = await connect(brokerPort, { protocolVersion })
    const directInbox = new Inbox(direct)
    await direct.subscribeAsync(`${topic}/up`, { qos: 1 })
    const viaTarget = await connect(port, { protocolVersion })
    const targetInbox = new Inbox(viaTarget)
    await viaTarget.subscribeAsync(`${topic}/down`, { qos: 1 })
    const up = payload()
    const down = payload()
    await viaTarget.publishAsync(`${topic}/up`, up, { qos: 1 })
    await direct.publishAsync(`${topic}/down`, down, { qos: 1 })
    expect((await directInbox.waitFor(1))[0]!.payload.equals(up)).toBe(true)
    expect((await targetInbox.waitFor(1))[0]!.payload.equals(down)).toBe(true)
    await direct.endAsync()
    await viaTarget.endAsync()
  })

  it('keeps retained messages, delivers them on subscribe with the retain flag, and clears them', async () => {
    const topic = uid('retained')
    const retained = payload()
    const pub = await client()
    await pub.publishAsync(topic, retained, { qos: 1, retain: true })

    const late = await client()
    const lateInbox = new Inbox(late)
    await late.subscribeAsync(topic, { qos: 1 })
    const [message] = await lateInbox.waitFor(1)
    expect(message!.payload.equals(retained)).toBe(true)
    expect(message!.packet.retain).toBe(true)

    await pub.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true }) // clears it
    await lateInbox.waitFor(2) // the clearing publish itself reaches the live subscriber
    const later = await client()
    const laterInbox = new Inbox(later)
    await later.subscribeAsync([topic, `${topic}/marker`], { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'after', { qos: 1 })
    const [first] = await laterInbox.waitFor(1)
    // A retained message would have come right after SUBACK, before the marker.
    expect(first!.topic).toBe(`${topic}/marker`)
    await endAll()
  })

  it('stops delivering after UNSUBSCRIBE', async () => {
    const topic = uid('unsub')
    const sub = await client()
    const inbox = new Inbox(sub)
    await sub.subscribeAsync([topic, `${topic}/marker`], { qos: 1 })
    const pub = await client()
    await pub.publishAsync(topic, 'one', { qos: 1 })
    await inbox.waitFor(1)
    await sub.unsubscribeAsync(topic)
    await pub.publishAsync(topic, 'two', { qos: 1 })
    await pub.publishAsync(`${topic}/marker`, 'three', { qos: 1 })
    const got = await inbox.waitFor(2)
    expect(got.map((m) => String(m.payload))).toEqual(['one', 'three'])
    await endAll()
  })

  it('carries a 1 MiB payload intact', async () => {
    const topic = uid('big')
    const sub = await client()
    const inbox = new Inbox(sub)
    await sub.subscribeAsync(topic, { qos: 1 })
    const pub = await client()
    const big = randomBytes(1024 * 1024)
    await pub.publishAsync(topic, big, { qos: 1 })
    const [message] = await inbox.waitFor(1, 10_000)
    expect(message!.payload.length).toBe(big.length)
    expect(message!.payload.equals(big)).toBe(true)
    await endAll()
  })
})
