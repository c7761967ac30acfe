/**
 * Session semantics survive the proxy: will messages on abnormal disconnect (and not on a normal
 * one), clean and persistent sessions with resume, directly and through Moat.
 */
import { expect, it } from 'vitest'
import { connect, connectWithInbox, Inbox, shortId, uid } from '../helpers/clients.js'
import { relayTargets } from '../helpers/targets.js'

relayTargets('sessions', [4, 5], (target, protocolVersion) => {
  it('publishes the will message when the client drops without DISCONNECT', async () => {
    const topic = uid('will')
    const watcher = await connect(target().port, { protocolVersion })
    const inbox = new Inbox(watcher)
    await watcher.subscribeAsync(topic, { qos: 1 })
    const will = { topic, payload: Buffer.from([0, 1, 2, 0xff]), qos: 1 as const, retain: false }
    const dying = await connect(target().port, { protocolVersion, will })
    dying.stream.destroy() // abnormal: no DISCONNECT
    const [message] = await inbox.waitFor(1)
    expect(message!.topic).toBe(topic)
    expect(message!.payload.equals(will.payload)).toBe(true)
    dying.end(true)
    await watcher.endAsync()
  })

  it('does not publish the will message after a normal DISCONNECT', async () => {
    const topic = uid('nowill')
    const watcher = await connect(target().port, { protocolVersion })
    const inbox = new Inbox(watcher)
    await watcher.subscribeAsync([topic, `${topic}/marker`], { qos: 1 })
    const clientId = shortId()
    const leaving = await connect(target().port, { protocolVersion, clientId, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } })
    await leaving.endAsync()
    await target().broker.clientGone(clientId)
    await watcher.publishAsync(`${topic}/marker`, 'marker', { qos: 1 })
    const [first] = await inbox.waitFor(1)
    expect(first!.topic).toBe(`${topic}/marker`)
    await watcher.endAsync()
  })

  it('starts a clean session with no state', async () => {
    const clientId = shortId()
    const first = await connect(target().port, { protocolVersion, clientId, clean: true })
    await first.subscribeAsync(uid('clean'), { qos: 1 })
    await first.endAsync()
    await target().broker.clientGone(clientId)
    const second = await connectWithInbox(target().port, { protocolVersion, clientId, clean: true })
    expect(second.connack.sessionPresent).toBe(false)
    await second.client.endAsync()
  })

  it('resumes a persistent session: messages queued while offline arrive on reconnect', async () => {
    const topic = uid('persist')
    const clientId = shortId()
    const persistent = protocolVersion === 5
      ? { clean: false, properties: { sessionExpiryInterval: 300 } }
      : { clean: false }
    const sub = await connect(target().port, { protocolVersion, clientId, ...persistent })
    await sub.subscribeAsync(topic, { qos: 1 })
    await sub.endAsync()
    await target().broker.clientGone(clientId)

    const pub = await connect(target().port, { protocolVersion })
    for (const n of [1, 2, 3]) await pub.publishAsync(topic, `queued ${n}`, { qos: 1 })

    const back = await connectWithInbox(target().port, { protocolVersion, clientId, ...persistent })
    expect(back.connack.sessionPresent).toBe(true)
    const got = await back.inbox.waitFor(3)
    expect(got.map((m) => String(m.payload))).toEqual(['queued 1', 'queued 2', 'queued 3'])
    await back.client.endAsync()
    await pub.endAsync()
  })
})
