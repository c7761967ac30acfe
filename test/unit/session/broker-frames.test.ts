/** Frames from the broker (session/broker-frames.ts), through a Session over fake sockets. */
import { describe, expect, it } from 'vitest'
import { MAX_SIZE } from '../../../src/config/units.js'
import { afterConnack, afterConnect, bytes, connackBytes, openSession, publishBytes, sessionConfig, sessionHarness, settle } from '../../helpers/session.js'

const outbound = sessionConfig({ acl: { outbound: true, rules: [{ deny: 'subscribe', topic: 'secret/#' }, { allow: 'all', topic: '#' }] } })

describe('BrokerFrames', () => {
  it('passes deliveries and acks on as the broker sent them, several in one write', async () => {
    const h = sessionHarness()
    await openSession(h)
    const burst = Buffer.concat([publishBytes('a/1', 0), publishBytes('a/2', 1, 4), bytes({ cmd: 'puback', messageId: 9 })])
    h.upstream().send(burst)
    await settle()
    expect(afterConnack(h)).toEqual(burst)
    expect(h.client.written).toHaveLength(2) // the CONNACK, then the burst as one slice
    expect(h.session.state.acksOwed).toBe(1)
  })

  it('holds back a delivery the client may not read and acknowledges it to the broker itself', async () => {
    const h = sessionHarness(outbound)
    await openSession(h)
    h.upstream().send(Buffer.concat([publishBytes('secret/1', 1, 5), publishBytes('secret/2', 2, 6), publishBytes('open/1', 0)]))
    await settle()
    expect(afterConnack(h)).toEqual(publishBytes('open/1', 0))
    expect(afterConnect(h)).toEqual(Buffer.concat([bytes({ cmd: 'puback', messageId: 5 }), bytes({ cmd: 'pubrec', messageId: 6 })]))
    expect(h.ctx.stats.deliveriesDenied).toBe(2)
    // The held QoS 2 delivery's PUBREL is Moat's to complete; the client never hears of it.
    h.upstream().send(bytes({ cmd: 'pubrel', messageId: 6 }))
    await settle()
    expect(afterConnack(h)).toEqual(publishBytes('open/1', 0))
    expect(afterConnect(h).subarray(8)).toEqual(bytes({ cmd: 'pubcomp', messageId: 6 }))
  })

  it('merges the broker\'s SUBACK with the filters Moat refused, in the client\'s order', async () => {
    const h = sessionHarness(outbound)
    await openSession(h)
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
    await openSession(h, 5)
    h.upstream().send(connackBytes(5))
    await settle()
    expect(afterConnack(h)).toEqual(Buffer.from([0xe0, 0x01, 0x83]))
    expect(h.session.isClosed).toBe(true)
    expect(h.lines.find((l) => l.event === 'upstream_protocol_error')).toMatchObject({ error: 'a second CONNACK' })
  })

  it('lowers the keepalive to maxKeepalive in a 5.0 CONNACK and closes a client silent past 1.5 times it', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxKeepalive: '1s', maxPacketSize: MAX_SIZE } }))
    await openSession(h, 5, 60)
    expect(h.session.state.keepalive).toBe(1)
    expect(h.client.received()).toEqual(bytes({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { serverKeepAlive: 1 } }, 5))
    await settle(1600)
    expect(h.session.isClosed).toBe(true)
    expect(h.client.received().subarray(-3)).toEqual(Buffer.from([0xe0, 0x01, 0x8d]))
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'idle_timeout' })
  })
})
