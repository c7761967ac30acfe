/** How a session follows its peers' ends (session/peer-ends.ts), through a Session over fake sockets. */
import { generate, type Packet } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { MAX_SIZE } from '../../../src/config/units.js'
import { sessionConfig, sessionHarness, settle, type SessionHarness } from '../../helpers/session.js'

const bytes = (packet: Packet, version = 4): Buffer => generate(packet, { protocolVersion: version })
const connect = (version = 4): Buffer => bytes({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version as 4, clientId: 'dev-1', clean: true, keepalive: 0 }, version)
const connack = (version = 4): Buffer => bytes({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }, version)
const publish = (topic: string): Buffer => bytes({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
const transparent = sessionConfig({ limits: { maxPacketSize: MAX_SIZE } })

async function open(h: SessionHarness, version = 4): Promise<void> {
  h.client.send(connect(version))
  await settle()
  h.upstream().send(connack(version))
  await settle()
}
const endReason = (h: SessionHarness): unknown => h.lines.find((l) => l.event === 'session_end')?.reason

describe('PeerEnds', () => {
  it('a client that half-closes behind packets pipelined after its CONNECT still has them delivered, then the session ends', async () => {
    const h = sessionHarness(sessionConfig(), { connectOnDial: false })
    h.client.send(Buffer.concat([connect(), publish('a'), publish('b')]))
    h.client.send(null)
    await settle()
    expect(h.session.isClosed).toBe(false)
    h.upstream().emit('connect')
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connect(), publish('a'), publish('b')]))
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_closed')
  })

  it('a client that half-closes with nothing held ends the session at once; the broker sees the connection end', async () => {
    const h = sessionHarness()
    await open(h)
    h.client.send(null)
    await settle()
    expect(h.upstream().writableEnded).toBe(true)
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_closed')
  })

  it("3.1.1 DISCONNECT goes to the broker and ends the session as the client's", async () => {
    const h = sessionHarness()
    await open(h)
    h.client.send(bytes({ cmd: 'disconnect' }))
    await settle()
    expect(h.upstream().received().subarray(connect().length)).toEqual(bytes({ cmd: 'disconnect' }))
    expect(endReason(h)).toBe('client_disconnect')
  })

  it("5.0 DISCONNECT: what the broker answers before its close reaches the client, and the session is the client's to end", async () => {
    const h = sessionHarness(transparent)
    await open(h, 5)
    h.upstream().closesWhenEnded = false
    h.client.send(bytes({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } }, 5))
    await settle()
    expect(h.session.isClosed).toBe(false)
    expect(h.upstream().writableEnded).toBe(true)
    const refusal = bytes({ cmd: 'disconnect', reasonCode: 0x82 }, 5)
    h.upstream().send(refusal)
    h.upstream().send(null)
    await settle()
    expect(h.client.received().subarray(connack(5).length)).toEqual(refusal)
    expect(h.session.isClosed).toBe(true)
    expect(endReason(h)).toBe('client_disconnect')
  })

  it("the broker's close is passed on bare, after what it sent before", async () => {
    const h = sessionHarness(transparent)
    await open(h, 5)
    h.upstream().send(bytes({ cmd: 'publish', topic: 't', payload: Buffer.from('last'), qos: 0, retain: false, dup: false }, 5))
    h.upstream().send(null)
    await settle()
    expect(h.client.received().subarray(connack(5).length)).toEqual(bytes({ cmd: 'publish', topic: 't', payload: Buffer.from('last'), qos: 0, retain: false, dup: false }, 5))
    expect(h.client.writableEnded).toBe(true)
    expect(endReason(h)).toBe('upstream_closed')
    expect(h.lines.find((l) => l.event === 'upstream_gone')).toMatchObject({ reason: 'upstream_closed' })
  })

  it('a failing client ends the session as client_error', async () => {
    const h = sessionHarness()
    await open(h)
    h.client.destroy(new Error('reset'))
    await settle()
    expect(endReason(h)).toBe('client_error')
  })
})
