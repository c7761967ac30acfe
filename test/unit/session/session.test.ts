import { describe, expect, it } from 'vitest'
import { generate, type Packet } from 'mqtt-packet'
import { MAX_SIZE } from '../../../src/config/units.js'
import { sessionConfig, sessionHarness, settle, type SessionHarness } from '../../helpers/session.js'

const bytes = (packet: Packet, version = 4): Buffer => generate(packet, { protocolVersion: version })

const connect = (version = 4): Buffer => bytes({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version as 4, clientId: 'dev-1', clean: true, keepalive: 0 }, version)
const connack = (version = 4): Buffer => bytes({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }, version)
const publish = (topic: string, qos: 0 | 1 | 2, messageId?: number, version = 4): Buffer =>
  bytes({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false, ...(messageId === undefined ? {} : { messageId }) }, version)

const denySecret = sessionConfig({ acl: [{ name: 'no-secret', deny: 'publish', topic: 'secret/#' }, { allow: 'all', topic: '#' }] })

/** CONNECT in, the broker's CONNACK back: the session is open. */
async function open(h: SessionHarness, version = 4): Promise<void> {
  h.client.send(connect(version))
  await settle()
  h.upstream().send(connack(version))
  await settle()
}

describe('Session in memory', () => {
  it('dials only after CONNECT, and passes CONNECT and CONNACK on unchanged', async () => {
    const h = sessionHarness()
    await settle()
    expect(h.dials).toHaveLength(0)
    h.client.send(connect())
    await settle()
    expect(h.dials).toHaveLength(1)
    expect(h.upstream().received()).toEqual(connect())
    h.upstream().send(connack())
    await settle()
    expect(h.client.received()).toEqual(connack())
    expect(h.session.state.connected).toBe(true)
    expect(h.lines.find((l) => l.event === 'session_open')).toMatchObject({ clientId: 'dev-1', version: 4, code: 0 })
  })

  it('passes a 5.0 CONNECT and CONNACK on unchanged when no limit needs announcing', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: MAX_SIZE } }))
    await open(h, 5)
    expect(h.upstream().received()).toEqual(connect(5))
    expect(h.client.received()).toEqual(connack(5))
  })

  it('adds to a 5.0 CONNACK only the Maximum Packet Size Moat enforces below the broker\'s', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: 1024 } }))
    await open(h, 5)
    expect(h.client.received()).toEqual(bytes({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { maximumPacketSize: 1024 } }, 5))
  })

  it('holds frames pipelined behind CONNECT until the broker is connected, then sends them in order', async () => {
    const h = sessionHarness(sessionConfig(), { connectOnDial: false })
    h.client.send(Buffer.concat([connect(), publish('a/b', 0)]))
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.alloc(0))
    h.upstream().emit('connect')
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connect(), publish('a/b', 0)]))
  })

  it('refuses a forbidden PUBLISH: the client gets its PUBACK, the broker nothing', async () => {
    const h = sessionHarness(denySecret)
    await open(h)
    h.client.send(publish('secret/plans', 1, 7))
    h.client.send(publish('public/news', 1, 8))
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connect(), publish('public/news', 1, 8)]))
    expect(h.client.received()).toEqual(Buffer.concat([connack(), bytes({ cmd: 'puback', messageId: 7 })]))
    expect(h.lines.filter((l) => l.event === 'packet_refused')).toEqual([
      expect.objectContaining({ audit: true, reason: 'acl_denied', code: 0x87, action: 'publish', topic: 'secret/plans', rule: 'no-secret', check: 'acl', clientId: 'dev-1' }),
    ])
    expect(h.session.isClosed).toBe(false)
  })

  it('logs the first refusal of a kind and sums up the rest in session_end', async () => {
    const h = sessionHarness(denySecret)
    await open(h)
    for (let id = 1; id <= 3; id++) h.client.send(publish('secret/plans', 1, id))
    await settle()
    expect(h.lines.filter((l) => l.event === 'packet_refused')).toHaveLength(1)
    h.client.push(null)
    await settle()
    expect(h.session.isClosed).toBe(true)
    expect(h.ended).toEqual([h.session])
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'client_closed', refusals: { acl_denied: 3 } })
  })

  it("a protocol fault after a refusal: the closing line names no rule or check of the earlier refusal", async () => {
    const h = sessionHarness(denySecret)
    await open(h)
    h.client.send(publish('secret/plans', 0))
    h.client.send(Buffer.from([0xc1, 0x00])) // PINGREQ with a reserved flag set
    await settle()
    const closing = h.lines.find((l) => l.event === 'client_refused')
    expect(closing).toMatchObject({ audit: true, reason: 'reserved_flags', clientId: 'dev-1' })
    expect(closing).not.toHaveProperty('rule')
    expect(closing).not.toHaveProperty('check')
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'reserved_flags' })
  })

  it('closes a client whose first packet is not CONNECT, never dialling', async () => {
    const h = sessionHarness()
    h.client.send(publish('a', 0))
    await settle()
    expect(h.dials).toHaveLength(0)
    expect(h.session.isClosed).toBe(true)
    expect(h.lines.find((l) => l.event === 'connect_refused')).toMatchObject({ audit: true, reason: 'first_packet_not_connect', packetType: 'publish' })
  })
})
