/**
 * A wildcard subscription past a narrower deny rule (`acl.overlap: filter`, the default): deny
 * `test/nosubscribe`, allow `#`. As with a broker's own `topic deny`, `#` is granted and the denied
 * topic is never delivered; Moat acknowledges the held QoS 1/2 deliveries to the broker itself, so
 * it does not send them again. With `overlap: refuse`, `#` is refused as before.
 *
 * Both sides: the client's SUBACK and what it receives, and Mosquitto's log (what it received from
 * the client's session, what it sent it) plus the same session taken over directly at the broker.
 */
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { aclFrom } from '../helpers/acl.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectWithInbox, Inbox, shortId } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const rules = [
  { name: 'no-subscribe', deny: 'subscribe', topic: 'test/nosubscribe' },
  { name: 'everything-else', allow: 'all', topic: '#' },
]

/** The SUBACK codes of one SUBSCRIBE (MQTT.js rejects on a failure code: read them off the error's packet). */
async function granted(client: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos)
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet
    if (packet?.granted === undefined) throw err
    return packet.granted
  }
}

describe.runIf(brokerKinds().includes('mosquitto'))('ACL overlap: a wildcard subscription past a deny rule (mosquitto)', () => {
  let broker: TestBroker
  let moat: Moat
  let strict: Moat
  let publisher: MqttClient

  beforeAll(async () => {
    broker = await startBroker('mosquitto')
    moat = await startMoat(broker, { acl: aclFrom({ rules }) })
    strict = await startMoat(broker, { acl: aclFrom({ rules, overlap: 'refuse' }) })
    // Publishes straight at the broker: what the broker delivers does not depend on Moat.
    publisher = await connect(broker.port)
  })
  afterAll(async () => {
    await publisher?.endAsync()
    await moat?.shutdown(0)
    await strict?.shutdown(0)
    await broker?.stop()
  })

  const sentTo = (id: string): string[] => broker.logs!().filter((l) => l.startsWith(`Sending PUBLISH to ${id} `))

  for (const version of [4, 5] as const) {
    const v = version === 5 ? '5.0' : '3.1.1'

    it(`MQTT ${v}: # is granted; test/ok is delivered, test/nosubscribe is not, and its QoS 1/2 deliveries are acknowledged to the broker by Moat`, async () => {
      const id = shortId()
      const session = { clientId: id, protocolVersion: version, clean: false, ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) }
      const { client, inbox } = await connectWithInbox(moat.address().port, session)
      expect(await granted(client, ['#'], 2)).toEqual([2])
      expect(await granted(client, ['test/nosubscribe', '$share/g/#'])).toEqual(version === 5 ? [0x87, 0x87] : [0x80, 0x80])
      const deniedBefore = moat.stats.deliveriesDenied

      await publisher.publishAsync('test/nosubscribe', 'held back (QoS 1)', { qos: 1 })
      await publisher.publishAsync('test/nosubscribe', 'held back (QoS 2)', { qos: 2 })
      await publisher.publishAsync('test/ok', 'delivered', { qos: 1 })
      expect((await inbox.waitForTopic('test/ok')).payload.toString()).toBe('delivered')
      expect(inbox.messages.map((m) => m.topic)).toEqual(['test/ok'])

      // The broker sent the three, once each, and got from the session: one SUBSCRIBE (the # one),
      // Moat's PUBACK and PUBREC/PUBCOMP for the held ones, and the client's PUBACK for test/ok
      // (which may come before Moat's PUBCOMP: the broker's PUBREL is a round trip later).
      const received = (): string[] => {
        const got = broker.received(id).filter((r) => r !== 'pingreq')
        return [...got.slice(0, 4), ...got.slice(4).sort()]
      }
      await expect.poll(received).toEqual(['connect', 'subscribe', 'puback', 'pubrec', 'puback', 'pubcomp'])
      expect(sentTo(id).map((l) => /'([^']*)'/.exec(l)![1])).toEqual(['test/nosubscribe', 'test/nosubscribe', 'test/ok'])
      expect(sentTo(id).filter((l) => l.includes('(d1'))).toEqual([])
      expect(moat.stats.deliveriesDenied - deniedBefore).toBe(2)
      await client.endAsync()
      await broker.clientGone(id)

      // The same session, straight at the broker: nothing of the held messages is pending redelivery.
      const again = await connectWithInbox(broker.port, { ...session, properties: version === 5 ? { sessionExpiryInterval: 0 } : undefined })
      expect(again.connack.sessionPresent).toBe(true)
      await publisher.publishAsync('test/after', 'barrier', { qos: 1 })
      const [first] = await again.inbox.waitFor(1)
      expect(first!.topic).toBe('test/after')
      expect(sentTo(id).filter((l) => l.includes('(d1'))).toEqual([])
      await again.client.unsubscribeAsync('#')
      await again.client.endAsync()
    })
  }

  it('a second subscriber through Moat on test/+ gets the same: granted, filtered; one directly at the broker gets everything', async () => {
    const through = await connect(moat.address().port, { protocolVersion: 5 })
    const throughInbox = new Inbox(through)
    expect(await granted(through, ['test/+'])).toEqual([1])
    const direct = await connect(broker.port)
    const directInbox = new Inbox(direct)
    await direct.subscribeAsync('test/+', { qos: 1 })
    await publisher.publishAsync('test/nosubscribe', 'x', { qos: 1 })
    await publisher.publishAsync('test/ok', 'y', { qos: 1 })
    await throughInbox.waitForTopic('test/ok')
    await directInbox.waitForTopic('test/ok')
    expect(directInbox.messages.map((m) => m.topic)).toEqual(['test/nosubscribe', 'test/ok'])
    expect(throughInbox.messages.map((m) => m.topic)).toEqual(['test/ok'])
    await through.endAsync()
    await direct.endAsync()
  })

  it('overlap: refuse keeps the old rule: # and +/+ are refused and the broker never sees the SUBSCRIBE', async () => {
    const id = shortId()
    const client = await connect(strict.address().port, { clientId: id, protocolVersion: 5 })
    expect(await granted(client, ['#', '+/+'])).toEqual([0x87, 0x87])
    expect(await granted(client, ['other/#'])).toEqual([1])
    await expect.poll(() => broker.received(id).filter((r) => r === 'subscribe')).toHaveLength(1)
    await client.endAsync()
  })
})
