/** Frames from the client after CONNECT (session/client-frames.ts), through a Session over fake sockets. */
import { describe, expect, it } from 'vitest'
import { MAX_SIZE } from '../../../src/config/units.js'
import { afterConnack, afterConnect, bytes, connectBytes, openSession, publishBytes, sessionConfig, sessionHarness, settle } from '../../helpers/session.js'

const denySecret = sessionConfig({ limits: { maxPacketSize: MAX_SIZE }, acl: [{ name: 'no-secret', deny: 'publish', topic: 'secret/#' }, { allow: 'all', topic: '#' }] })

describe('ClientFrames', () => {
  it('forwards a run of allowed frames from one chunk as one write of the client\'s bytes', async () => {
    const h = sessionHarness()
    await openSession(h)
    const chunk = Buffer.concat([publishBytes('a', 0), publishBytes('b', 1, 1), Buffer.from([0xc0, 0x00]), bytes({ cmd: 'puback', messageId: 3 })])
    const writes = h.upstream().written.length
    h.client.send(chunk)
    await settle()
    expect(afterConnect(h)).toEqual(chunk)
    expect(h.upstream().written.length).toBe(writes + 1)
  })

  it('answers a QoS 2 publish reusing a packet id still in flight itself, and the broker sees it once', async () => {
    const h = sessionHarness()
    await openSession(h)
    h.client.send(Buffer.concat([publishBytes('a', 2, 7), publishBytes('a', 2, 7)]))
    await settle()
    expect(afterConnect(h)).toEqual(publishBytes('a', 2, 7))
    expect(afterConnack(h)).toEqual(bytes({ cmd: 'pubrec', messageId: 7 }))
    // Once the client released it, the id may carry a new publish.
    h.client.send(Buffer.concat([bytes({ cmd: 'pubrel', messageId: 7 }), publishBytes('a', 2, 7)]))
    await settle()
    expect(afterConnect(h)).toEqual(Buffer.concat([publishBytes('a', 2, 7), bytes({ cmd: 'pubrel', messageId: 7 }), publishBytes('a', 2, 7)]))
  })

  it('3.1.1: a refused QoS 2 publish gets PUBREC, and its PUBREL PUBCOMP, from Moat; the broker sees neither', async () => {
    const h = sessionHarness(denySecret)
    await openSession(h)
    h.client.send(publishBytes('secret/x', 2, 4))
    await settle()
    h.client.send(bytes({ cmd: 'pubrel', messageId: 4 }))
    await settle()
    expect(afterConnect(h)).toEqual(Buffer.alloc(0))
    expect(afterConnack(h)).toEqual(Buffer.concat([bytes({ cmd: 'pubrec', messageId: 4 }), bytes({ cmd: 'pubcomp', messageId: 4 })]))
  })

  it('5.0: a refused publish is answered with the reason code, ending the flow', async () => {
    const h = sessionHarness(denySecret)
    await openSession(h, 5)
    h.client.send(publishBytes('secret/x', 2, 4, 5))
    await settle()
    expect(afterConnack(h)).toEqual(Buffer.from([0x50, 0x03, 0x00, 0x04, 0x87])) // PUBREC 0x87, no properties
    expect(afterConnect(h)).toEqual(Buffer.alloc(0))
  })

  it('closes a client for a second CONNECT, a PINGREQ with a body and a packet type clients never send', async () => {
    for (const [bad, reason] of [[connectBytes(), 'duplicate_connect'], [Buffer.from([0xc0, 0x01, 0x00]), 'malformed_packet'], [Buffer.from([0xd0, 0x00]), 'forbidden_packet_type']] as const) {
      const h = sessionHarness()
      await openSession(h)
      h.client.send(Buffer.concat([bad, publishBytes('after', 0)]))
      await settle()
      expect(h.session.isClosed).toBe(true)
      expect(afterConnect(h)).toEqual(Buffer.alloc(0))
      expect(h.lines.find((l) => l.event === 'client_refused')).toMatchObject({ reason })
    }
  })

  it('MQTT 3.1 takes DUP on PUBREL; 3.1.1 closes the client for it', async () => {
    const pubrelDup = Buffer.from([0x6a, 0x02, 0x00, 0x01])
    const v3 = sessionHarness()
    await openSession(v3, 3)
    v3.client.send(pubrelDup)
    await settle()
    expect(afterConnect(v3)).toEqual(pubrelDup)
    const v4 = sessionHarness()
    await openSession(v4)
    v4.client.send(pubrelDup)
    await settle()
    expect(v4.lines.find((l) => l.event === 'client_refused')).toMatchObject({ reason: 'reserved_flags' })
  })

  it('5.0 DISCONNECT goes to the broker, and the session waits for the broker to close', async () => {
    const h = sessionHarness()
    await openSession(h, 5)
    const disconnect = bytes({ cmd: 'disconnect', reasonCode: 0 }, 5)
    h.client.send(disconnect)
    await settle()
    expect(afterConnect(h)).toEqual(disconnect)
    expect(h.session.isClosed).toBe(true) // the fake broker closes when Moat ends its side
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'client_disconnect' })
  })
})
