import type { IConnectPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { CHECK_FAILED, CheckChain, HookLayout } from '../../../src/checks/chain.js'
import type { Check, CheckFactory } from '../../../src/checks/check.js'
import { Action, disconnect, FORWARD, reject, type Verdict } from '../../../src/checks/verdict.js'
import type { MoatConfig } from '../../../src/config/types.js'
import { PublishView } from '../../../src/protocol/publish.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'

const config = {} as MoatConfig
const connect = { cmd: 'connect', clientId: 'c', protocolVersion: 4 } as IConnectPacket
const state = (): SessionState => new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))

function factory(name: string, check: Omit<Check, 'name'> | null, calls: string[] = []): CheckFactory {
  return {
    name,
    create: () => check === null ? null : () => {
      calls.push(`create:${name}`)
      return { name, ...check }
    },
  }
}

describe('CheckChain', () => {
  it('leaves out a check whose factory returns null (feature off)', () => {
    const chain = CheckChain.build(config, [factory('a', {}), factory('off', null), factory('b', {})])
    expect(chain.names).toEqual(['a', 'b'])
  })

  it('creates one check instance per session', () => {
    const calls: string[] = []
    const chain = CheckChain.build(config, [factory('a', {}, calls)])
    chain.forSession(state())
    chain.forSession(state())
    expect(calls).toEqual(['create:a', 'create:a'])
  })

  it('runs publish checks in order and stops at the first refusal', () => {
    const order: string[] = []
    const deny = reject(0x87, 'malformed_packet')
    const chain = CheckChain.build(config, [
      factory('first', { onPublish: () => { order.push('first'); return FORWARD } }),
      factory('second', { onPublish: () => { order.push('second'); return deny } }),
      factory('third', { onPublish: () => { order.push('third'); return FORWARD } }),
    ])
    const checks = chain.forSession(state())
    expect(checks.runPublish(new PublishView(), state())).toBe(deny)
    expect(order).toEqual(['first', 'second'])
    expect(checks.decidedBy).toBe('second')
  })

  it('forwards when every check forwards, and when no check has the hook', () => {
    const checks = CheckChain.build(config, [factory('a', { onPublish: () => FORWARD }), factory('b', {})]).forSession(state())
    expect(checks.runPublish(new PublishView(), state())).toBe(FORWARD)
    expect(checks.runSubscribe({ topic: 'a', qos: 0 }, state())).toBe(FORWARD)
    expect(checks.runUnsubscribe('a', state())).toBe(FORWARD)
  })

  it('calls each session its own checks\' hooks, with the check as `this`, when sessions differ in them', () => {
    // One configuration's sessions share their hook list; a session whose checks have other hook
    // functions (here: every other session) must still run its own, and the next one its own.
    const deny = reject(0x87, 'not_authorized')
    const made: Array<Check & { seen: number }> = []
    class Forwards implements Check {
      readonly name = 'x'
      seen = 0
      onPublish() { this.seen++; return FORWARD }
      onDeliver() { this.seen++; return FORWARD }
    }
    class Refuses implements Check {
      readonly name = 'x'
      seen = 0
      onPublish() { this.seen++; return deny }
      onDeliver() { this.seen++; return deny }
    }
    const chain = CheckChain.build(config, [
      factory('first', { onPublish: () => FORWARD }),
      {
        name: 'x',
        create: () => () => {
          const check = made.length % 2 === 0 ? new Forwards() : new Refuses()
          made.push(check)
          return check
        },
      },
    ])
    const sessions = [chain.forSession(state()), chain.forSession(state()), chain.forSession(state()), chain.forSession(state())]
    const view = new PublishView()
    expect(sessions.map((s) => s.runPublish(view, state()).action)).toEqual([Action.Forward, Action.Reject, Action.Forward, Action.Reject])
    expect(sessions.map((s) => s.runDeliver(view, state()).action)).toEqual([Action.Forward, Action.Reject, Action.Forward, Action.Reject])
    expect(sessions[1]!.decidedBy).toBe('x')
    expect(made.map((c) => c.seen)).toEqual([2, 2, 2, 2])
  })

  it('runs, for each session, the hooks its own checks implement when sessions differ in which they implement', () => {
    // Every session but the third gets a check without onSubscribe and onClose: the layout made for
    // one kind must not be used for the other, in either order.
    const deny = reject(0x87, 'not_authorized')
    const closed: number[] = []
    let made = 0
    const chain = CheckChain.build(config, [
      factory('first', { onPublish: () => FORWARD }),
      {
        name: 'x',
        create: () => () => {
          const n = made++
          return n === 2
            ? { name: 'x', onSubscribe: () => deny, onClose: () => { closed.push(n) } }
            : { name: 'x', onPublish: () => deny }
        },
      },
    ])
    const sessions = [0, 1, 2, 3].map(() => chain.forSession(state()))
    const view = new PublishView()
    expect(sessions.map((s) => s.runSubscribe({ topic: 'a', qos: 0 }, state()).action)).toEqual([Action.Forward, Action.Forward, Action.Reject, Action.Forward])
    expect(sessions.map((s) => s.runPublish(view, state()).action)).toEqual([Action.Reject, Action.Reject, Action.Forward, Action.Reject])
    for (const s of sessions) s.close(state())
    expect(closed).toEqual([2])
  })

  it('a hook layout fits checks with the same function for every hook, and no others', () => {
    // Every hook of the Check interface, one at a time: a layout compares each of them.
    const hooks = ['onConnect', 'onPublish', 'onSubscribe', 'onUnsubscribe', 'onDeliver', 'onPacket', 'onClose', 'reviewSubscription', 'reviewConnection'] as const
    const one = (): Verdict => FORWARD
    const other = (): Verdict => FORWARD
    for (const hook of hooks) {
      const layout = new HookLayout([{ name: 'a' }, { name: 'x', [hook]: one }])
      expect(layout.fits([{ name: 'b' }, { name: 'y', [hook]: one }]), hook).toBe(true)
      expect(layout.fits([{ name: 'a' }, { name: 'x', [hook]: other }]), hook).toBe(false)
      expect(layout.fits([{ name: 'a' }, { name: 'x' }]), hook).toBe(false)
      expect(layout.fits([{ name: 'a', [hook]: one }, { name: 'x', [hook]: one }]), hook).toBe(false)
      expect(layout.fits([{ name: 'x', [hook]: one }]), hook).toBe(false)
    }
  })

  it('runs CONNECT synchronously when every check is synchronous', () => {
    const checks = CheckChain.build(config, [factory('a', { onConnect: () => FORWARD })]).forSession(state())
    expect(checks.runConnect(connect, state())).toBe(FORWARD)
  })

  it('goes asynchronous only from a check that returns a promise, then continues the chain', async () => {
    const order: string[] = []
    const checks = CheckChain.build(config, [
      factory('sync', { onConnect: () => { order.push('sync'); return FORWARD } }),
      factory('async', { onConnect: async () => { order.push('async'); return FORWARD } }),
      factory('after', { onConnect: () => { order.push('after'); return disconnect(0x86, 'check_failed') } }),
    ]).forSession(state())
    const result = checks.runConnect(connect, state())
    expect(result).toBeInstanceOf(Promise)
    expect((await result).action).toBe(Action.Disconnect)
    expect(order).toEqual(['sync', 'async', 'after'])
    expect(checks.decidedBy).toBe('after')
  })

  it('fails closed when a check throws or its promise rejects (DESIGN principle 5)', async () => {
    const throwing = CheckChain.build(config, [factory('t', { onConnect: () => { throw new Error('boom') } })]).forSession(state())
    expect(throwing.runConnect(connect, state())).toBe(CHECK_FAILED)
    const rejecting = CheckChain.build(config, [factory('r', { onConnect: () => Promise.reject(new Error('down')) })]).forSession(state())
    expect(await rejecting.runConnect(connect, state())).toBe(CHECK_FAILED)
  })

  it('hands out cached verdicts: deciding allocates nothing', () => {
    expect(reject(0x87, 'malformed_packet')).toBe(reject(0x87, 'malformed_packet'))
    expect(Object.isFrozen(disconnect(0x81, 'malformed_packet'))).toBe(true)
  })

  it('calls every onClose even if one throws', () => {
    const closed: string[] = []
    const checks = CheckChain.build(config, [
      factory('a', { onClose: () => { closed.push('a'); throw new Error('x') } }),
      factory('b', { onClose: () => { closed.push('b') } }),
    ]).forSession(state())
    checks.close(state())
    expect(closed).toEqual(['a', 'b'])
  })

  it('reviews an open session after a reload: the first refusal decides, a throwing check fails closed', () => {
    const gone = disconnect(0x87, 'acl_denied')
    const reviewed = CheckChain.build(config, [
      factory('keeps', { reviewConnection: () => FORWARD }),
      factory('revokes', { reviewConnection: () => gone }),
    ]).forSession(state())
    expect(reviewed.reviewConnection(state())).toBe(gone)
    expect(reviewed.decidedBy).toBe('revokes')
    const throwing = CheckChain.build(config, [factory('t', { reviewConnection: () => { throw new Error('boom') } })]).forSession(state())
    expect(throwing.reviewConnection(state())).toBe(CHECK_FAILED)
    const none = CheckChain.build(config, [factory('a', {})]).forSession(state())
    expect(none.reviewConnection(state())).toBe(FORWARD)
    const subscription = CheckChain.build(config, [factory('acl', { reviewSubscription: (f) => (f === '#' ? gone : FORWARD) })]).forSession(state())
    expect(subscription.reviewSubscription('#', state())).toBe(gone)
    expect(subscription.reviewSubscription('a/b', state())).toBe(FORWARD)
  })
})
