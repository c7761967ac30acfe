/** Frames from the broker (session/broker-frames.ts), through a Session over fake sockets. */
import { generate, type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { MAX_SIZE } from '../../../src/config/units.js'
import { sessionConfig, sessionHarness, settle, type SessionHarness } from '../../helpers/session.js'

const bytes = (packet: Packet, version = 4): Buffer => generate(packet, { protocolVersion: version })
const connect = (version = 4, keepalive = 0): Buffer => bytes({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version as 4, clientId: 'dev-1', clean: true, keepalive }, version)
const connack = (version = 4): Buffer => bytes({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }, version)
const delivery = (topic: string, qos: 0 | 1 | 2, messageId?: number): Buffer =>
  bytes({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false, ...(messageId === undefined ? {} : { messageId }) })

async function open(h: SessionHarness, version = 4, keepalive = 0): Promise<void> {
  h.client.send(connect(version, keepalive))
  await settle()
  h.upstream().send(connack(version))
  await settle()
}

/** What the client received after its CONNACK. */
const afterConnack = (h: SessionHarness, version = 4): Buffer => h.client.received().subarray(connack(version).length)
/** What the broker received after the CONNECT. */
const afterConnect = (h: SessionHarness, version = 4, keepalive = 0): Buffer => h.upstream().received().subarray(connect(version, keepalive).length)

const outbound = sessionConfig({ acl: { outbound: true, rules: [{ deny: 'subscribe', topic: 'secret/#' }, { allow: 'all', topic: '#' }] } })

describe('BrokerFrames', () => {
  it('passes deliveries and acks on as the broker sent them, several in one write', async () => {
    const h = sessionHarness()
    await open(h)
    const burst = Buffer.concat([delivery('a/1', 0), delivery('a/2', 1, 4), bytes({ cmd: 'puback', messageId: 9 })])
    h.upstream().send(burst)
    await settle()
    expect(afterConnack(h)).toEqual(burst)
    expect(h.client.written).toHaveLength(2) // the CONNACK, then the burst as one slice
    expect(h.session.state.acksOwed).toBe(1)
  })

  it('holds back a delivery the client may not read and acknowledges it to the broker itself', async () => {
    const h = sessionHarness(outbound)
    await open(h)
    h.upstream().send(Buffer.concat([delivery('secret/1', 1, 5), delivery('secret/2', 2, 6), delivery('open/1', 0)]))
    await settle()
    expect(afterConnack(h)).toEqual(delivery('open/1', 0))
    expect(afterConnect(h)).toEqual(Buffer.concat([bytes({ cmd: 'puback', messageId: 5 }), bytes({ cmd: 'pubrec', messageId: 6 })]))
    expect(h.ctx.stats.deliveriesDenied).toBe(2)
    // The held QoS 2 delivery's PUBREL is Moat's to complete; the client never hears of it.
    h.upstream().send(bytes({ cmd: 'pubrel', messageId: 6 }))
    await settle()
    expect(afterConnack(h)).toEqual(delivery('open/1', 0))
    expect(afterConnect(h).subarray(8)).toEqual(bytes({ cmd: 'pubcomp', messageId: 6 }))
  })

  it('merges the broker\'s SUBACK with the filters Moat refused, in the client\'s order', async () => {
    const h = sessionHarness(outbound)
    await open(h)
    h.client.send(bytes({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'secret/x', qos: 1 }, { topic: 'open/#', qos: 1 }] }))
    await settle()
    expect(afterConnect(h)).toEqual(bytes({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'open/#', qos: 1 }] }))
    h.upstream().send(bytes({ cmd: 'suback', messageId: 3, granted: [1] }))
    await settle()
    expect(afterConnack(h)).toEqual(bytes({ cmd: 'suback', messageId: 3, granted: [0x80, 1] }))
    expect([...h.session.state.subscriptions]).toEqual([['open/#', 1]])
  })

  it('closes on a second CONNACK, telling a 5.0 client the service is gone', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: MAX_SIZE } }))
    await open(h, 5)
    h.upstream().send(connack(5))
    await settle()
    expect(afterConnack(h, 5)).toEqual(Buffer.from([0xe0, 0x01, 0x83]))
    expect(h.session.isClosed).toBe(true)
    expect(h.lines.find((l) => l.event === 'upstream_protocol_error')).toMatchObject({ error: 'a second CONNACK' })
  })

  it('lowers the keepalive to maxKeepalive in a 5.0 CONNACK and closes a client silent past 1.5 times it', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxKeepalive: '1s', maxPacketSize: MAX_SIZE } }))
    await open(h, 5, 60)
    expect(h.session.state.keepalive).toBe(1)
    expect(h.client.received()).toEqual(bytes({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { serverKeepAlive: 1 } }, 5))
    await settle(1600)
    expect(h.session.isClosed).toBe(true)
    expect(h.client.received().subarray(-3)).toEqual(Buffer.from([0xe0, 0x01, 0x8d]))
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'idle_timeout' })
  })
})
