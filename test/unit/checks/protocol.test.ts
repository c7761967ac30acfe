import { generate, type IPublishPacket } from 'mqtt-packet'
import type { IConnectPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { ProtocolCheck } from '../../../src/checks/protocol.js'
import { Action } from '../../../src/checks/verdict.js'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'
import { ReasonCode } from '../../../src/protocol/reason.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'

function view(fields: Partial<IPublishPacket>): PublishView {
  const frame = generate({ cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 0, retain: false, dup: false, ...fields } as IPublishPacket, { protocolVersion: 5 })
  const v = new PublishView()
  expect(readPublish(frame, frame[0]! & 0x0f, 2, 5, true, v)).toBe(0)
  return v
}

function v5State(aliasMax: number): SessionState {
  const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
  s.version = 5
  s.topicAliasMaximum = aliasMax
  return s
}

describe('ProtocolCheck', () => {
  it('resolves a 5.0 topic alias to its topic so later checks see the real topic', () => {
    const check = new ProtocolCheck()
    const s = v5State(10)
    const binding = view({ topic: 'devices/1/temp', properties: { topicAlias: 2 } })
    expect(check.onPublish(binding, s).action).toBe(Action.Forward)
    // The check does not bind: the session records the binding once the publish is forwarded.
    expect(s.clientAliases?.[2]).toBeUndefined()
    s.bindClientAlias(2, binding.topic)
    const aliased = view({ topic: '', properties: { topicAlias: 2 } })
    expect(check.onPublish(aliased, s).action).toBe(Action.Forward)
    expect(aliased.topic).toBe('devices/1/temp')
  })

  it('refuses an alias never set [MQTT-3.3.2-10]', () => {
    const verdict = new ProtocolCheck().onPublish(view({ topic: '', properties: { topicAlias: 3 } }), v5State(10))
    expect(verdict).toMatchObject({ action: Action.Disconnect, reason: ReasonCode.ProtocolError })
  })

  it('refuses an alias above the broker\'s Topic Alias Maximum [MQTT-3.3.2-9]', () => {
    const verdict = new ProtocolCheck().onPublish(view({ topic: 'a', properties: { topicAlias: 11 } }), v5State(10))
    expect(verdict).toMatchObject({ action: Action.Disconnect, reason: ReasonCode.TopicAliasInvalid, why: 'topic_alias_invalid' })
  })

  it('refuses wildcards in a will topic', () => {
    const connect = { cmd: 'connect', clientId: 'c', protocolVersion: 4, will: { topic: 'a/#', payload: Buffer.alloc(0), qos: 0, retain: false } } as IConnectPacket
    expect(new ProtocolCheck().onConnect(connect)).toMatchObject({ action: Action.Disconnect, why: 'invalid_topic' })
  })

  it('refuses a 3.1.1 password without a user name [MQTT-3.1.2-22]', () => {
    const connect = { cmd: 'connect', clientId: 'c', protocolVersion: 4, password: Buffer.from('x') } as IConnectPacket
    expect(new ProtocolCheck().onConnect(connect)).toMatchObject({ action: Action.Disconnect, why: 'protocol_error' })
  })

  it('refuses an invalid topic filter in SUBSCRIBE and UNSUBSCRIBE', () => {
    expect(new ProtocolCheck().onSubscribe({ topic: 'a/#/b', qos: 0 })).toMatchObject({ action: Action.Disconnect, reason: ReasonCode.TopicFilterInvalid })
    expect(new ProtocolCheck().onUnsubscribe('a+')).toMatchObject({ action: Action.Disconnect, reason: ReasonCode.TopicFilterInvalid })
    expect(new ProtocolCheck().onSubscribe({ topic: 'a/+/c', qos: 0 }).action).toBe(Action.Forward)
  })
})
