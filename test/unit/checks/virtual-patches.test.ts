import type { IConnectPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { ALL_VIRTUAL_PATCHES, MAX_TOPIC_LEVELS, VirtualPatchCheck, virtualPatchCheck } from '../../../src/checks/virtual-patches.js'
import { configFromObject } from '../../../src/config/load.js'
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
  const check = new VirtualPatchCheck(ALL_VIRTUAL_PATCHES)

  it('refuses wildcards in the client id and the user name (CVE-2017-7650)', () => {
    expect(check.onConnect(connect({ clientId: 'a+b' }))).toMatchObject({ action: Action.Disconnect, reason: 0x85, why: 'invalid_client_id' })
    expect(check.onConnect(connect({ clientId: '#' }))).toMatchObject({ action: Action.Disconnect, reason: 0x85 })
    expect(check.onConnect(connect({ username: 'u#' }))).toMatchObject({ action: Action.Disconnect, reason: 0x86, why: 'bad_credentials' })
    expect(check.onConnect(connect({ clientId: 'plain-id', username: 'alice' })).action).toBe(Action.Forward)
  })

  it('refuses $ topics other than $SYS in publishes and wills (CVE-2018-12543), not in subscriptions; $SYS is left to the broker', () => {
    expect(check.onPublish(view('$x/y'))).toMatchObject({ action: Action.Reject, reason: 0x90 })
    expect(check.onPublish(view('$CONTROL/dynamic-security/v1'))).toMatchObject({ action: Action.Reject, reason: 0x90 })
    // Not the CVE's trigger: Mosquitto refuses a client's write there itself, or takes a bridge's state.
    expect(check.onPublish(view('$SYS/broker/x')).action).toBe(Action.Forward)
    expect(check.onPublish(view('a/$x')).action).toBe(Action.Forward)
    expect(check.onConnect(connect({ will: { topic: '$SYS/broker/connection/b/state', payload: Buffer.alloc(0), qos: 0, retain: false } })).action).toBe(Action.Forward)
    expect(check.onConnect(connect({ will: { topic: '$x', payload: Buffer.alloc(0), qos: 0, retain: false } }))).toMatchObject({ action: Action.Disconnect, reason: 0x90 })
    expect(check.onSubscribe({ topic: '$SYS/#', qos: 0 }).action).toBe(Action.Forward)
  })

  it(`refuses topics and filters of more than ${MAX_TOPIC_LEVELS} levels (CVE-2019-11779) as Mosquitto 2.0 does: closing the client`, () => {
    const deep = 'a/'.repeat(MAX_TOPIC_LEVELS) + 'a'
    // 200 separators: Mosquitto's own limit, accepted.
    const ok = 'a/'.repeat(MAX_TOPIC_LEVELS - 1) + 'a'
    expect(ok.split('/').length).toBe(201)
    expect(check.onSubscribe({ topic: deep, qos: 0 })).toMatchObject({ action: Action.Disconnect, reason: 0x81 })
    expect(check.onSubscribe({ topic: ok, qos: 0 }).action).toBe(Action.Forward)
    expect(check.onUnsubscribe(deep)).toMatchObject({ action: Action.Disconnect, reason: 0x81 })
    expect(check.onUnsubscribe(ok).action).toBe(Action.Forward)
    expect(check.onPublish(view(deep))).toMatchObject({ action: Action.Disconnect, reason: 0x82 })
    expect(check.onPublish(view(ok)).action).toBe(Action.Forward)
  })

  it('turns each patch off on its own under virtualPatches', () => {
    const deep = 'a/'.repeat(MAX_TOPIC_LEVELS) + 'a'
    const noDollar = new VirtualPatchCheck({ ...ALL_VIRTUAL_PATCHES, 'cve-2018-12543': false })
    expect(noDollar.onPublish(view('$TopicA/B')).action).toBe(Action.Forward)
    expect(noDollar.onPublish(view('$SYS/x')).action).toBe(Action.Forward)
    expect(noDollar.onConnect(connect({ will: { topic: '$x', payload: Buffer.alloc(0), qos: 0, retain: false } })).action).toBe(Action.Forward)
    expect(noDollar.onConnect(connect({ clientId: 'a+b' })).action).toBe(Action.Disconnect)
    const noDepth = new VirtualPatchCheck({ ...ALL_VIRTUAL_PATCHES, 'cve-2019-11779': false })
    expect(noDepth.onSubscribe({ topic: deep, qos: 0 }).action).toBe(Action.Forward)
    expect(noDepth.onPublish(view(deep)).action).toBe(Action.Forward)
    expect(noDepth.onPublish(view('$x')).action).toBe(Action.Reject)
    const noWildcardIds = new VirtualPatchCheck({ ...ALL_VIRTUAL_PATCHES, 'cve-2017-7650': false })
    expect(noWildcardIds.onConnect(connect({ clientId: 'a+b', username: 'u#' })).action).toBe(Action.Forward)
  })

  it('reads virtualPatches from the config: all on by default, the check left out when all three are off', () => {
    const base = { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }], upstream: { host: '127.0.0.1', port: 1884 } }
    expect(configFromObject(base).virtualPatches).toEqual(ALL_VIRTUAL_PATCHES)
    const off = configFromObject({ ...base, virtualPatches: { 'cve-2017-7650': false, 'cve-2018-12543': false, 'cve-2019-11779': false } })
    expect(off.virtualPatches).toMatchObject({ 'cve-2018-12543': false, 'cve-2021-41039': true })
    expect(virtualPatchCheck.create(off, undefined as never)).toBeNull()
    expect(() => configFromObject({ ...base, virtualPatches: { 'cve-2018-12543': 'no' } })).toThrow(/virtualPatches.*cve-2018-12543.*true or false/s)
    expect(() => configFromObject({ ...base, virtualPatches: { 'cve-1999-0001': false } })).toThrow(/cve-1999-0001/)
  })
})
