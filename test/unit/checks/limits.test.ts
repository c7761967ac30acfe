import { detachedCheckEnv } from '../../../src/checks/env.js'
import { describe, expect, it } from 'vitest'
import { quotaCheck } from '../../../src/checks/quota.js'
import { rateCheck } from '../../../src/checks/rate.js'
import { sizeCheck } from '../../../src/checks/size.js'
import { Action } from '../../../src/checks/verdict.js'
import type { MoatConfig } from '../../../src/config/types.js'
import { PacketType } from '../../../src/protocol/packet-type.js'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'
import { limitsFrom, testConfig } from '../../helpers/moat.js'
import { generate } from 'mqtt-packet'

const config = (limits: Record<string, unknown>): MoatConfig => ({ ...testConfig({ host: '127.0.0.1', port: 1 }), limits: limitsFrom(limits) })
let ids = 0
const state = (username: string | null = null): SessionState => {
  const s = new SessionState(++ids, plainConnInfo('mqtt', '127.0.0.1', 1))
  s.version = 4
  s.username = username
  return s
}
function view(topic: string, size: number, qos = 0, messageId = 1): PublishView {
  const frame = generate({ cmd: 'publish', topic, payload: Buffer.alloc(size), qos, messageId, retain: false, dup: false } as never)
  const v = new PublishView()
  const headerSize = frame[1]! < 0x80 ? 2 : frame[2]! < 0x80 ? 3 : frame[3]! < 0x80 ? 4 : 5
  expect(readPublish(frame, frame[0]! & 0x0f, headerSize, 4, true, v)).toBe(0)
  return v
}

describe('factories are off unless configured', () => {
  it.each([['size', sizeCheck], ['rate', rateCheck], ['quota', quotaCheck]] as const)('%s', (_name, factory) => {
    expect(factory.create(config({}), detachedCheckEnv())).toBeNull()
  })
})

describe('size check', () => {
  const make = sizeCheck.create(config({ maxPayload: '16KiB', payload: [{ topic: 'camera/#', max: '1MiB' }, { topic: 'camera/tiny', max: '1B' }] }), detachedCheckEnv())!
  const check = make(state())
  it('applies the first matching rule, then maxPayload', () => {
    expect(check.onPublish!(view('camera/x', 1024 * 1024), state()).action).toBe(Action.Forward)
    expect(check.onPublish!(view('camera/x', 1024 * 1024 + 1), state())).toMatchObject({ action: Action.Disconnect, reason: 0x95, why: 'payload_too_large' })
    expect(check.onPublish!(view('camera/tiny', 1000), state()).action).toBe(Action.Forward) // camera/# came first
    expect(check.onPublish!(view('data/x', 16 * 1024), state()).action).toBe(Action.Forward)
    expect(check.onPublish!(view('data/x', 16 * 1024 + 1), state()).action).toBe(Action.Disconnect)
  })
})

describe('rate check', () => {
  it('drop: refuses what is over with 0x97 and charges nothing for it', () => {
    const make = rateCheck.create(config({ messageRate: '5/m', burst: '1m', onExcess: 'drop' }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    const verdicts = Array.from({ length: 8 }, () => check.onPublish!(view('a', 1), s))
    expect(verdicts.filter((v) => v.action === Action.Forward)).toHaveLength(5)
    expect(verdicts[7]).toMatchObject({ action: Action.Reject, reason: 0x97, why: 'rate_limited' })
  })

  it('throttle: says when to retry, in SessionState.throttleUntil', () => {
    const make = rateCheck.create(config({ messageRate: '1/m' }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    expect(check.onPublish!(view('a', 1), s).action).toBe(Action.Forward)
    const before = Math.floor(performance.now())
    expect(check.onPublish!(view('a', 1), s)).toMatchObject({ action: Action.Throttle, why: 'rate_limited' })
    expect(s.throttleUntil).toBeGreaterThan(before + 59_000)
  })

  it('packetRate counts other packets through onPacket; drop there closes (an unanswered SUBSCRIBE would break the client)', () => {
    const make = rateCheck.create(config({ packetRate: '2/m', burst: '1m', onExcess: 'drop' }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    expect(check.onPacket!(PacketType.Pingreq, 2, s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1), s).action).toBe(Action.Forward)
    expect(check.onPacket!(PacketType.Subscribe, 10, s)).toMatchObject({ action: Action.Disconnect, reason: 0x96 })
  })

  it('acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) the client owes are not counted by packetRate or byteRate, per connection or per user', () => {
    const make = rateCheck.create(config({ packetRate: '2/m', byteRate: '100B/m', burst: '1m', onExcess: 'disconnect', perUsername: { packetRate: '2/m', burst: '1m', onExcess: 'disconnect' } }), detachedCheckEnv())!
    const s = state('alice')
    const check = make(s)
    s.acksOwed = 4000 // what the session counts as the broker's deliveries, PUBRECs and PUBRELs go to the client
    for (let n = 0; n < 1000; n++) {
      for (const type of [PacketType.Puback, PacketType.Pubrec, PacketType.Pubrel, PacketType.Pubcomp]) {
        expect(check.onPacket!(type, 4, s).action).toBe(Action.Forward)
      }
    }
    // The buckets are as full as before the acks: two packets pass, the third is over.
    expect(check.onPacket!(PacketType.Pingreq, 2, s).action).toBe(Action.Forward)
    expect(check.onPacket!(PacketType.Pingreq, 2, s).action).toBe(Action.Forward)
    expect(check.onPacket!(PacketType.Pingreq, 2, s)).toMatchObject({ action: Action.Disconnect, reason: 0x96 })
    expect(s.acksOwed).toBe(0)
  })

  it('acknowledgements that answer nothing the broker sent count like any other packet (an ack flood is limited)', () => {
    const make = rateCheck.create(config({ packetRate: '2/m', burst: '1m', onExcess: 'disconnect' }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    s.acksOwed = 1
    expect(check.onPacket!(PacketType.Puback, 4, s).action).toBe(Action.Forward) // owed: free
    expect(check.onPacket!(PacketType.Puback, 4, s).action).toBe(Action.Forward) // counted: 1 of 2
    expect(check.onPacket!(PacketType.Pubcomp, 4, s).action).toBe(Action.Forward) // counted: 2 of 2
    expect(check.onPacket!(PacketType.Puback, 4, s)).toMatchObject({ action: Action.Disconnect, reason: 0x96 })
  })

  it('the strongest action of the buckets that are over wins', () => {
    const make = rateCheck.create(config({ messageRate: '1/m', onExcess: 'throttle', topics: [{ topic: 'x/#', rate: '1/m', onExcess: 'disconnect' }] }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    expect(check.onPublish!(view('x/1', 1), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('y', 1), s).action).toBe(Action.Throttle)
    expect(check.onPublish!(view('x/1', 1), s).action).toBe(Action.Disconnect)
  })

  it('per user name: connections of one user share buckets; other users and anonymous clients do not', () => {
    const make = rateCheck.create(config({ perUsername: { messageRate: '3/m', burst: '1m', onExcess: 'drop' } }), detachedCheckEnv())!
    const a1 = state('alice')
    const a2 = state('alice')
    const b = state('bob')
    const anon = state(null)
    const [c1, c2, c3, c4] = [make(a1), make(a2), make(b), make(anon)]
    const passed = (check: ReturnType<typeof make>, s: SessionState, n: number): number =>
      Array.from({ length: n }, () => check.onPublish!(view('t', 1), s)).filter((v) => v.action === Action.Forward).length
    expect(passed(c1, a1, 2) + passed(c2, a2, 5)).toBe(3)
    expect(passed(c3, b, 5)).toBe(3)
    expect(passed(c4, anon, 10)).toBe(10)
  })

  it('per-user buckets are bounded by trackedUsers (lru): a flood of user names cannot grow memory', () => {
    const make = rateCheck.create(config({ perUsername: { messageRate: '1/m', trackedUsers: 100 } }), detachedCheckEnv())!
    for (let i = 0; i < 5000; i++) {
      const s = state(`user-${i}`)
      make(s).onPublish!(view('t', 1), s)
    }
    // Only the 100 most recent user names are remembered: the first one starts afresh.
    const s = state('user-0')
    expect(make(s).onPublish!(view('t', 1), s).action).toBe(Action.Forward)
    const s2 = state('user-4999')
    expect(make(s2).onPublish!(view('t', 1), s2).action).toBe(Action.Throttle)
  })
})

describe('quota check', () => {
  it('counts distinct filters; unsubscribing gives one back', () => {
    const make = quotaCheck.create(config({ maxSubscriptions: 2 }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    const sub = (topic: string) => check.onSubscribe!({ topic, qos: 0 }, s)
    expect(sub('a').action).toBe(Action.Forward)
    expect(sub('a').action).toBe(Action.Forward)
    expect(sub('b').action).toBe(Action.Forward)
    expect(sub('c')).toMatchObject({ action: Action.Reject, reason: 0x97, why: 'quota_exceeded' })
    check.onUnsubscribe!('a', s)
    expect(sub('c').action).toBe(Action.Forward)
  })

  it('counts QoS 1/2 packet ids in flight; a retransmission is not counted twice; QoS 0 is free', () => {
    const make = quotaCheck.create(config({ maxInflight: 2 }), detachedCheckEnv())!
    const s = state()
    s.version = 5
    const check = make(s)
    expect(check.onPublish!(view('a', 1, 1, 1), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1, 1, 1), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1, 0), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1, 2, 2), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1, 1, 3), s)).toMatchObject({ action: Action.Disconnect, reason: 0x93 })
    s.inflight!.delete(1) // the broker acknowledged packet 1
    expect(check.onPublish!(view('a', 1, 1, 3), s).action).toBe(Action.Forward)
  })

  it('a 3.1.1 client over its in-flight quota (it was never told one) waits instead of being closed', () => {
    const make = quotaCheck.create(config({ maxInflight: 1 }), detachedCheckEnv())!
    const s = state()
    const check = make(s)
    expect(check.onPublish!(view('a', 1, 1, 1), s).action).toBe(Action.Forward)
    expect(check.onPublish!(view('a', 1, 1, 2), s)).toMatchObject({ action: Action.Throttle, why: 'receive_maximum_exceeded' })
    expect(s.throttleUntil).toBeGreaterThan(0)
  })
})
