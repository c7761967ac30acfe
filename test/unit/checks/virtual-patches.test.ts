import type { IConnectPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { MAX_TOPIC_LEVELS, VirtualPatchCheck } from '../../../src/checks/virtual-patches.js'
import { Action } from '../../../src/checks/verdict.js'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'

function connect(over: Partial<IConnectPacket>): IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 10, ...over } as IConnectPacket
}

function view(topic: string): PublishView {
  const t = Buffer.from(topic)
  const body = Buffer.concat([Buffer.from([t.length >> 8, t.length & 0xff]), t, Buffer.from('x')])
  const frame = Buffer.concat([Buffer.from([0x30, ...(body.length < 128 ? [body.length] : [(body.length & 0x7f) | 0x80, body.length >> 7])]), body])
  const v = new PublishView()
  expect(readPublish(frame, 0, body.length < 128 ? 2 : 3, 4, true, v)).toBe(0)
  return v
}

describe('virtual patches (docs/virtual-patching.md)', () => {
  const check = new VirtualPatchCheck()

  it('refuses wildcards in the client id and the user name (CVE-2017-7650)', () => {
    expect(check.onConnect(connect({ clientId: 'a+b' }))).toMatchObject({ action: Action.Disconnect, reason: 0x85, why: 'invalid_client_id' })
    expect(check.onConnect(connect({ clientId: '#' }))).toMatchObject({ action: Action.Disconnect, reason: 0x85 })
    expect(check.onConnect(connect({ username: 'u#' }))).toMatchObject({ action: Action.Disconnect, reason: 0x86, why: 'bad_credentials' })
    expect(check.onConnect(connect({ clientId: 'plain-id', username: 'alice' })).action).toBe(Action.Forward)
  })

  it('refuses $ topics in publishes and wills (CVE-2018-12543), not in subscriptions', () => {
    expect(check.onPublish(view('$x/y'))).toMatchObject({ action: Action.Reject, reason: 0x90 })
    expect(check.onPublish(view('a/$x')).action).toBe(Action.Forward)
    expect(check.onConnect(connect({ will: { topic: '$SYS/x', payload: Buffer.alloc(0), qos: 0, retain: false } }))).toMatchObject({ action: Action.Disconnect, reason: 0x90 })
    expect(check.onSubscribe({ topic: '$SYS/#', qos: 0 }).action).toBe(Action.Forward)
  })

  it(`refuses topics and filters of more than ${MAX_TOPIC_LEVELS} levels (CVE-2019-11779)`, () => {
    const deep = 'a/'.repeat(MAX_TOPIC_LEVELS) + 'a'
    const ok = 'a/'.repeat(MAX_TOPIC_LEVELS - 1) + 'a'
    expect(check.onSubscribe({ topic: deep, qos: 0 })).toMatchObject({ action: Action.Reject, reason: 0x8f })
    expect(check.onSubscribe({ topic: ok, qos: 0 }).action).toBe(Action.Forward)
    expect(check.onUnsubscribe(deep).action).toBe(Action.Disconnect)
    expect(check.onPublish(view(deep))).toMatchObject({ action: Action.Reject, reason: 0x90 })
    expect(check.onPublish(view(ok)).action).toBe(Action.Forward)
  })
})
