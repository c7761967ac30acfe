/**
 * Mutated packets from many clients at once: every byte a client sends after a valid CONNECT comes
 * from valid packets with random bytes flipped, cut or inserted. Whatever happens to each client,
 * the broker must only ever receive well-formed MQTT (its own sockets are decoded and checked),
 * and Moat must keep serving an honest client afterwards. (The full fuzz suite is separate work.)
 */
import { randomInt } from 'node:crypto'
import { generate, type Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { startAedes, type AedesBroker } from '../helpers/aedes.js'
import { connect, Inbox, rawSession, uid } from '../helpers/clients.js'
import { aclFrom } from '../helpers/acl.js'
import { limitsFrom, startMoat, type MoatOverrides } from '../helpers/moat.js'

const CLIENTS = 150
const PACKETS_PER_CLIENT = 30

const seeds: Packet[] = [
  { cmd: 'publish', topic: 'm/a', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false },
  { cmd: 'publish', topic: 'm/b/c', payload: Buffer.alloc(40, 1), qos: 1, messageId: 7, retain: true, dup: false },
  { cmd: 'publish', topic: 'm/q2', payload: Buffer.from('x'), qos: 2, messageId: 9, retain: false, dup: false },
  { cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'm/#', qos: 1 }, { topic: 'm/+/c', qos: 0 }] },
  { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['m/#'] },
  { cmd: 'puback', messageId: 5 },
  { cmd: 'pubrec', messageId: 6 },
  { cmd: 'pubrel', messageId: 6 },
  { cmd: 'pubcomp', messageId: 6 },
  { cmd: 'pingreq' },
] as Packet[]

function mutate(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes)
  switch (randomInt(4)) {
    case 0: // flip a byte
      out[randomInt(out.length)] = randomInt(256)
      return out
    case 1: // cut the tail
      return out.subarray(0, randomInt(out.length))
    case 2: { // insert a byte
      const at = randomInt(out.length + 1)
      return Buffer.concat([out.subarray(0, at), Buffer.from([randomInt(256)]), out.subarray(at)])
    }
    default: // leave it valid
      return out
  }
}

function storm(title: string, overrides: MoatOverrides, honestTopic: () => string, allowedPublishes: RegExp | null): void {
describe(`mutated packets from many clients (aedes, ${title})`, () => {
  let broker: AedesBroker
  let moat: Moat

  beforeAll(async () => {
    broker = await startAedes()
    moat = await startMoat(broker, overrides)
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('lets nothing malformed reach the broker and keeps serving honest clients', async () => {
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => rawSession(moat.address().port, uid('mut'))))
    for (const raw of clients) {
      const chunks: Buffer[] = []
      for (let i = 0; i < PACKETS_PER_CLIENT; i++) chunks.push(mutate(generate(seeds[randomInt(seeds.length)]!)))
      raw.send(Buffer.concat(chunks))
    }
    // Every client has either been closed by Moat or is still open because all it sent was valid
    // (or is a valid prefix): end those, then wait for every connection to be gone.
    for (const raw of clients) raw.socket.end()
    await Promise.all(clients.map((raw) => raw.closed))
    await expect.poll(() => moat.sessionCount, { timeout: 10_000 }).toBe(0)
    await expect.poll(() => broker.connections.filter((c) => c.clientId?.startsWith('mut')).every((c) => c.closed), { timeout: 10_000 }).toBe(true)

    const seen = broker.connections.filter((c) => c.clientId?.startsWith('mut'))
    expect(seen.length).toBe(CLIENTS)
    for (const connection of seen) expect(connection.received).not.toContain('malformed')
    if (allowedPublishes !== null) {
      // Nothing the policy forbids got through either, whatever the mutations made of the topics.
      const published = seen.flatMap((c) => c.received.filter((r) => r.startsWith('publish ')))
      expect(published.filter((r) => !allowedPublishes.test(r))).toEqual([])
    }
    const closedByMoat = (['malformed_packet', 'reserved_flags', 'forbidden_packet_type', 'invalid_topic', 'invalid_topic_filter', 'packet_too_large', 'protocol_error', 'duplicate_connect'] as const)
      .reduce((n, reason) => n + moat.stats.closedFor(reason), 0)
    expect(closedByMoat).toBeGreaterThan(CLIENTS / 2)

    const topic = honestTopic()
    const honest = await connect(moat.address().port)
    const inbox = new Inbox(honest)
    await honest.subscribeAsync(topic, { qos: 1 })
    await honest.publishAsync(topic, 'still here', { qos: 1 })
    expect(String((await inbox.waitFor(1))[0]!.payload)).toBe('still here')
    await honest.endAsync()
  }, 60_000)
})
}

storm('protocol checks only', { limits: { maxPacketSize: 4096, connectTimeoutMs: 2000 } }, () => uid('after'), null)

storm('with an ACL, payload caps, rate limits and quotas', {
  limits: limitsFrom({ maxPacketSize: '4KiB', connectTimeout: '2s', maxPayload: '32B', messageRate: '10000/s', onExcess: 'drop', maxSubscriptions: 4, maxInflight: 8 }),
  acl: aclFrom([{ allow: 'publish', topic: 'm/a' }, { allow: 'all', topic: 'm/honest/#' }, { allow: 'subscribe', topic: 'm/#' }, { deny: 'all', topic: '#' }]),
}, () => `m/honest/${uid('after')}`, /^publish m\/a$/)
