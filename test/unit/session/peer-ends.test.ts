/** How a session follows its peers' ends (session/peer-ends.ts), through a Session over fake sockets. */
import { describe, expect, it } from 'vitest'
import { MAX_SIZE } from '../../../src/config/units.js'
import { afterConnack, afterConnect, bytes, connectBytes, endReason, openSession, publishBytes, sessionConfig, sessionHarness, settle } from '../../helpers/session.js'

const transparent = sessionConfig({ limits: { maxPacketSize: MAX_SIZE } })

describe('PeerEnds', () => {
  it('a client that half-closes behind packets pipelined after its CONNECT still has them delivered, then the session ends', async () => {
    const h = sessionHarness(sessionConfig(), { connectOnDial: false })
    h.client.send(Buffer.concat([connectBytes(), publishBytes('a'), publishBytes('b')]))
    h.client.send(null)
    await settle()
    expect(h.session.isClosed).toBe(false)
    h.upstream().emit('connect')
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connectBytes(), publishBytes('a'), publishBytes('b')]))
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_closed')
  })

  it('a client that half-closes with nothing held ends the session at once; the broker sees the connection end', async () => {
    const h = sessionHarness()
    await openSession(h)
    h.client.send(null)
    await settle()
    expect(h.upstream().writableEnded).toBe(true)
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_closed')
  })

  it("3.1.1 DISCONNECT goes to the broker and ends the session as the client's", async () => {
    const h = sessionHarness()
    await openSession(h)
    h.client.send(bytes({ cmd: 'disconnect' }))
    await settle()
    expect(afterConnect(h)).toEqual(bytes({ cmd: 'disconnect' }))
    expect(endReason(h)).toBe('client_disconnect')
  })

  it("5.0 DISCONNECT: what the broker answers before its close reaches the client, and the session is the client's to end", async () => {
    const h = sessionHarness(transparent)
    await openSession(h, 5)
    h.upstream().closesWhenEnded = false
    h.client.send(bytes({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } }, 5))
    await settle()
    expect(h.session.isClosed).toBe(false)
    expect(h.upstream().writableEnded).toBe(true)
    const refusal = bytes({ cmd: 'disconnect', reasonCode: 0x82 }, 5)
    h.upstream().send(refusal)
    h.upstream().send(null)
    await settle()
    expect(afterConnack(h)).toEqual(refusal)
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_disconnect')
  })

  it("the broker's close is passed on bare, after what it sent before", async () => {
    const h = sessionHarness(transparent)
    await openSession(h, 5)
    h.upstream().send(publishBytes('t', 0, undefined, 5))
    h.upstream().send(null)
    await settle()
    expect(afterConnack(h)).toEqual(publishBytes('t', 0, undefined, 5))
    expect(h.client.writableEnded).toBe(true)
    expect(endReason(h)).toBe('upstream_closed')
    expect(h.lines.find((l) => l.event === 'upstream_gone')).toMatchObject({ reason: 'upstream_closed' })
  })

  it('a failing client ends the session as client_error', async () => {
    const h = sessionHarness()
    await openSession(h)
    h.client.destroy(new Error('reset'))
    await settle()
    expect(endReason(h)).toBe('client_error')
  })
})
