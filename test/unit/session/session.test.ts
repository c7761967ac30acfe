import { describe, expect, it } from 'vitest'
import type { CheckFactory } from '../../../src/checks/check.js'
import { disconnect, FORWARD, reject, throttle } from '../../../src/checks/verdict.js'
import { MAX_SIZE } from '../../../src/config/units.js'
import { nowMs } from '../../../src/limits/token-bucket.js'
import { ReasonCode } from '../../../src/protocol/reason.js'
import { afterConnect, bytes, connackBytes, connectBytes, openSession, publishBytes, sessionConfig, sessionHarness, settle } from '../../helpers/session.js'

const denySecret = sessionConfig({ acl: [{ name: 'no-secret', deny: 'publish', topic: 'secret/#' }, { allow: 'all', topic: '#' }] })

describe('Session in memory', () => {
  it('dials only after CONNECT, and passes CONNECT and CONNACK on unchanged', async () => {
    const h = sessionHarness()
    await settle()
    expect(h.dials).toHaveLength(0)
    h.client.send(connectBytes())
    await settle()
    expect(h.dials).toHaveLength(1)
    expect(h.upstream().received()).toEqual(connectBytes())
    h.upstream().send(connackBytes())
    await settle()
    expect(h.client.received()).toEqual(connackBytes())
    expect(h.session.state.connected).toBe(true)
    expect(h.lines.find((l) => l.event === 'session_open')).toMatchObject({ clientId: 'dev-1', version: 4, code: 0 })
  })

  it('passes a 5.0 CONNECT and CONNACK on unchanged when no limit needs announcing', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: MAX_SIZE } }))
    await openSession(h, 5)
    expect(h.upstream().received()).toEqual(connectBytes(5))
    expect(h.client.received()).toEqual(connackBytes(5))
  })

  it('adds to a 5.0 CONNACK only the Maximum Packet Size Moat enforces below the broker\'s', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: 1024 } }))
    await openSession(h, 5)
    expect(h.client.received()).toEqual(bytes({ cmd: 'connack', reasonCode: 0, sessionPresent: false, properties: { maximumPacketSize: 1024 } }, 5))
  })

  it('holds frames pipelined behind CONNECT until the broker is connected, then sends them in order', async () => {
    const h = sessionHarness(sessionConfig(), { connectOnDial: false })
    h.client.send(Buffer.concat([connectBytes(), publishBytes('a/b', 0)]))
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.alloc(0))
    h.upstream().emit('connect')
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connectBytes(), publishBytes('a/b', 0)]))
  })

  it('refuses a forbidden PUBLISH: the client gets its PUBACK, the broker nothing', async () => {
    const h = sessionHarness(denySecret)
    await openSession(h)
    h.client.send(publishBytes('secret/plans', 1, 7))
    h.client.send(publishBytes('public/news', 1, 8))
    await settle()
    expect(h.upstream().received()).toEqual(Buffer.concat([connectBytes(), publishBytes('public/news', 1, 8)]))
    expect(h.client.received()).toEqual(Buffer.concat([connackBytes(), bytes({ cmd: 'puback', messageId: 7 })]))
    expect(h.lines.filter((l) => l.event === 'packet_refused')).toEqual([
      expect.objectContaining({ audit: true, reason: 'acl_denied', code: 0x87, action: 'publish', topic: 'secret/plans', rule: 'no-secret', check: 'acl', clientId: 'dev-1' }),
    ])
    expect(h.session.isClosed).toBe(false)
  })

  it('logs the first refusal of a kind and sums up the rest in session_end', async () => {
    const h = sessionHarness(denySecret)
    await openSession(h)
    for (let id = 1; id <= 3; id++) h.client.send(publishBytes('secret/plans', 1, id))
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
    await openSession(h)
    h.client.send(publishBytes('secret/plans', 0))
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
    h.client.send(publishBytes('a', 0))
    await settle()
    expect(h.dials).toHaveLength(0)
    expect(h.session.isClosed).toBe(true)
    expect(h.lines.find((l) => l.event === 'connect_refused')).toMatchObject({ audit: true, reason: 'first_packet_not_connect', packetType: 'publish' })
  })
})

describe('Session in memory: a reload', () => {
  const allowAll = sessionConfig({ acl: [{ allow: 'all', topic: '#' }] })
  const noA = sessionConfig({ acl: [{ name: 'no-a', deny: 'subscribe', topic: 'a/#' }, { allow: 'all', topic: '#' }] })

  it('unsubscribes at the broker a subscription the new policy forbids, holds back its deliveries meanwhile, and swallows the UNSUBACK', async () => {
    const h = sessionHarness(allowAll)
    await openSession(h)
    h.client.send(bytes({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 0 }] }))
    await settle()
    h.upstream().send(bytes({ cmd: 'suback', messageId: 1, granted: [0] }))
    await settle()
    expect([...h.session.state.subscriptions.keys()]).toEqual(['a/#'])
    h.ctx.policy.swap(noA)
    h.session.adoptPolicy()
    await settle()
    expect(afterConnect(h).subarray(-9)).toEqual(bytes({ cmd: 'unsubscribe', messageId: 0xffff, unsubscriptions: ['a/#'] }))
    expect(h.lines.find((l) => l.event === 'subscriptions_revoked')).toMatchObject({ filters: ['a/#'], rule: 'no-a', clientId: 'dev-1' })
    const before = h.client.received().length
    h.upstream().send(Buffer.concat([publishBytes('a/1'), bytes({ cmd: 'unsuback', messageId: 0xffff, granted: [] })]))
    await settle()
    expect(h.client.received().length).toBe(before)
    expect(h.ctx.stats.aclRevocations).toBe(1)
    expect(h.session.isClosed).toBe(false)
  })
})

describe('Session in memory: a throttled packet', () => {
  /**
   * A check that holds its session's first PUBLISH for 20 ms, then refuses those to `no/…`, and
   * that, once the policy is reloaded with a maxPacketSize of 2000, disconnects the client on review.
   */
  const holdOnce: CheckFactory = {
    name: 'hold-once',
    create: (config) => () => {
      let held = false
      return {
        name: 'hold-once',
        onPublish: (p, s) => {
          if (held) return p.topic.startsWith('no/') ? DENY : FORWARD
          held = true
          s.throttleUntil = nowMs() + 20
          return HOLD
        },
        reviewConnection: () => (config.limits.maxPacketSize === 2000 ? GONE : FORWARD),
      }
    },
  }
  const HOLD = throttle(ReasonCode.QuotaExceeded, 'rate_limited')
  const DENY = reject(ReasonCode.NotAuthorized, 'acl_denied')
  const GONE = disconnect(ReasonCode.NotAuthorized, 'bad_credentials')

  it('is checked again when its wait is over and goes on, with what the client sent behind it', async () => {
    const h = sessionHarness(sessionConfig(), { factories: [holdOnce] })
    await openSession(h)
    h.client.send(Buffer.concat([publishBytes('a', 0), publishBytes('b', 0)]))
    await settle()
    expect(h.upstream().received()).toEqual(connectBytes())
    expect(h.ctx.stats.sessionsThrottled).toBe(1)
    expect(h.session.info().clientPaused).toBe(true)
    await settle(40)
    expect(h.upstream().received()).toEqual(Buffer.concat([connectBytes(), publishBytes('a', 0), publishBytes('b', 0)]))
    expect(h.ctx.stats.sessionsThrottled).toBe(0)
    expect(h.ctx.stats.throttleWaits).toBe(1)
    expect(h.session.info().clientPaused).toBe(false)
  })

  it('is dropped, not checked again, when a reload closes the session during the wait', async () => {
    const h = sessionHarness(sessionConfig({ limits: { maxPacketSize: 1000 } }), { factories: [holdOnce] })
    await openSession(h)
    h.client.send(publishBytes('no/a', 1, 1))
    await settle()
    expect(h.ctx.stats.sessionsThrottled).toBe(1)
    h.ctx.policy.swap(sessionConfig({ limits: { maxPacketSize: 2000 } }))
    await settle(40)
    expect(h.session.isClosed).toBe(true)
    expect(h.lines.find((l) => l.event === 'client_refused')).toMatchObject({ reason: 'bad_credentials', check: 'hold-once' })
    expect(h.lines.filter((l) => l.event === 'packet_refused')).toEqual([])
    expect(h.ctx.stats.rejectedFor('acl_denied')).toBe(0)
    expect(h.ctx.stats.sessionsThrottled).toBe(0)
    expect(h.client.received()).toEqual(connackBytes())
    expect(h.upstream().received()).toEqual(connectBytes())
  })
})
