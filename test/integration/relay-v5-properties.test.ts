/**
 * MQTT 5.0 properties pass through untouched: user properties, message expiry, content type,
 * payload format, response topic and correlation data, and topic aliases in both directions.
 * (Aedes speaks no 5.0, so this file runs against Mosquitto only.)
 */
import { expect, it } from 'vitest'
import { connect, connectWithInbox, Inbox, uid } from '../helpers/clients.js'
import { relayTargets } from '../helpers/targets.js'

relayTargets('5.0 properties', [5], (target, protocolVersion) => {
  it('relays user properties, expiry, content type, payload format, response topic and correlation data', async () => {
    const topic = uid('props')
    const sub = await connect(target().port, { protocolVersion })
    const inbox = new Inbox(sub)
    await sub.subscribeAsync(topic, { qos: 1 })
    const pub = await connect(target().port, { protocolVersion })
    const properties = {
      payloadFormatIndicator: true,
      messageExpiryInterval: 3600,
      contentType: 'application/json; charset=utf-8',
      responseTopic: `${topic}/reply`,
      correlationData: Buffer.from([0, 1, 2, 0xfe, 0xff]),
      userProperties: { site: 'plant-7', 'ünïcode': 'välue', multi: ['a', 'b'] },
    }
    await pub.publishAsync(topic, '{"t":21.5}', { qos: 1, properties })
    const [message] = await inbox.waitFor(1)
    const got = message!.packet.properties!
    expect(got.payloadFormatIndicator).toBe(true)
    expect(got.contentType).toBe(properties.contentType)
    expect(got.responseTopic).toBe(properties.responseTopic)
    expect(Buffer.from(got.correlationData!).equals(properties.correlationData)).toBe(true)
    expect(got.userProperties).toEqual(properties.userProperties)
    // The broker lowers the remaining expiry by the time the message waited; never raises it.
    expect(got.messageExpiryInterval).toBeGreaterThan(3590)
    expect(got.messageExpiryInterval).toBeLessThanOrEqual(3600)
    expect(String(message!.payload)).toBe('{"t":21.5}')
    await sub.endAsync()
    await pub.endAsync()
  })

  it('relays a client→broker topic alias: set once, then used with an empty topic', async () => {
    const topic = uid('alias-up')
    const sub = await connect(target().port, { protocolVersion })
    const inbox = new Inbox(sub)
    await sub.subscribeAsync(topic, { qos: 1 })
    const pub = await connect(target().port, { protocolVersion })
    await pub.publishAsync(topic, 'first', { qos: 1, properties: { topicAlias: 1 } })
    await pub.publishAsync('', 'second', { qos: 1, properties: { topicAlias: 1 } })
    const got = await inbox.waitFor(2)
    expect(got.map((m) => [m.topic, String(m.payload)])).toEqual([[topic, 'first'], [topic, 'second']])
    await sub.endAsync()
    await pub.endAsync()
  })

  it('relays broker→client messages to a subscriber that accepts topic aliases', async () => {
    const topic = uid('alias-down')
    const { client: sub, inbox } = await connectWithInbox(target().port, { protocolVersion, properties: { topicAliasMaximum: 10 } })
    await sub.subscribeAsync(topic, { qos: 1 })
    const pub = await connect(target().port, { protocolVersion })
    for (const n of [1, 2, 3]) await pub.publishAsync(topic, `m${n}`, { qos: 1 })
    const got = await inbox.waitFor(3)
    expect(got.map((m) => [m.topic, String(m.payload)])).toEqual([[topic, 'm1'], [topic, 'm2'], [topic, 'm3']])
    await sub.endAsync()
    await pub.endAsync()
  })

  it('relays the broker\'s CONNACK properties unchanged', async () => {
    const { client, connack } = await connectWithInbox(target().port, { protocolVersion, properties: { sessionExpiryInterval: 60, receiveMaximum: 20 } })
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.topicAliasMaximum).toBeGreaterThan(0)
    await client.endAsync()
  })
})
