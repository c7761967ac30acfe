/**
 * The ACL on a live fleet: a reload reaches open sessions (the next publish follows the new rule,
 * a revoked subscription is unsubscribed at the broker and stops delivering at once, an invalid
 * file keeps the old rules), shadow rules only log and count, and the outbound check holds back
 * deliveries a client may not read (acknowledging them to the broker).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { MqttClient } from 'mqtt'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, rawSession, shortId } from '../helpers/clients.js'

const kind = brokerKinds()[0]!

/** Log lines Moat wrote, parsed. */
class LogSink extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>)
    done()
  }
}

describe(`ACL reload, shadow rules and outbound check (${kind})`, () => {
  let broker: TestBroker
  let moat: Moat
  let file: string
  let witness: MqttClient
  let seen: Inbox
  const logs = new LogSink()

  function writePolicy(acl: string[]): void {
    writeFileSync(file, [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'log: { level: info }',
      'auth: { anonymous: true }',
      'acl:',
      ...acl.map((l) => `  ${l}`),
    ].join('\n'))
  }

  const baseRules = [
    'outbound: true',
    'rules:',
    '  - { name: own, allow: all, topic: "devices/{client_id}/#" }',
    '  - { name: news, allow: subscribe, topic: "news/#" }',
    '  - { name: rest, deny: all, topic: "#" }',
    'shadow:',
    '  rules:',
    '    - { name: candidate-own, allow: all, topic: "devices/{client_id}/+" }',
  ]

  beforeAll(async () => {
    broker = await startBroker(kind)
    file = join(mkdtempSync(join(tmpdir(), 'moat-acl-')), 'moat.yaml')
    writePolicy(baseRules)
    moat = new Moat(loadConfig(file), { logger: pino({ level: 'info' }, logs) })
    await moat.start()
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('#')
  })
  afterAll(async () => {
    await witness?.endAsync()
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('shadow rules log and count what they would deny while the message still passes', async () => {
    const id = shortId()
    const client = await connect(moat.address().port, { clientId: id })
    // Allowed by the enforced rules; the candidate allows only one level below the device.
    await client.publishAsync(`devices/${id}/deep/topic`, 'passes')
    await seen.waitForTopic(`devices/${id}/deep/topic`)
    await client.publishAsync(`devices/${id}/deep/again`, 'passes too')
    await seen.waitForTopic(`devices/${id}/deep/again`)
    expect(moat.stats.aclShadowDenials[0]).toBe(2)
    const lines = logs.lines.filter((l) => l.event === 'acl_shadow_deny' && l.clientId === id)
    expect(lines).toHaveLength(1) // logged once per session and rule, counted every time
    expect(lines[0]).toMatchObject({ action: 'publish', topic: `devices/${id}/deep/topic`, rule: 'default deny' })
    await client.endAsync()
  })

  it('the outbound check holds back deliveries of a resumed session to topics the client may not read, and acks them to the broker', async () => {
    const id = shortId()
    // A persistent session subscribed to everything, made straight at the broker (before Moat guarded it).
    const direct = await connect(broker.port, { clientId: id, clean: false })
    await direct.subscribeAsync('#', { qos: 1 })
    await direct.endAsync()
    const { client, inbox } = await (async () => {
      const c = await connect(moat.address().port, { clientId: id, clean: false })
      return { client: c, inbox: new Inbox(c) }
    })()
    await witness.publishAsync('secret/plans', 'not for devices', { qos: 1 })
    await witness.publishAsync(`devices/${id}/cmd`, 'mine', { qos: 1 })
    await inbox.waitForTopic(`devices/${id}/cmd`)
    expect(inbox.messages.map((m) => m.topic)).not.toContain('secret/plans')
    expect(moat.stats.deliveriesDenied).toBeGreaterThanOrEqual(1)
    await client.endAsync()
    // Moat acknowledged the held delivery: connected directly again, the session gets no redelivery of it.
    const again = await connect(broker.port, { clientId: id, clean: false })
    const againInbox = new Inbox(again)
    await witness.publishAsync(`devices/${id}/after`, 'barrier', { qos: 1 })
    const [first] = await againInbox.waitFor(1)
    expect(first!.topic).toBe(`devices/${id}/after`)
    await again.unsubscribeAsync('#')
    await again.endAsync()
  })

  it('a reload reaches open sessions: revoked subscriptions stop at once, publishes follow the new rule, a bad file keeps the rules', async () => {
    const id = shortId()
    const raw = await rawSession(moat.address().port, id, 4)
    raw.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'news/#', qos: 0 }, { topic: `devices/${id}/#`, qos: 0 }] }))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'suback', granted: [0, 0] })
    await witness.publishAsync('news/today', 'before')
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'publish', topic: 'news/today' })
    // Allowed before the reload, and so remembered by the session (acl/recent-decisions.ts): the
    // reload below must still decide it afresh.
    raw.send(generate({ cmd: 'publish', topic: `devices/${id}/blocked`, payload: Buffer.from('before'), qos: 0, retain: false, dup: false }))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'publish', topic: `devices/${id}/blocked` })

    // New policy: no news, and the device may no longer publish under `blocked/`.
    writePolicy([
      'outbound: false',
      'rules:',
      // First: a decision remembered from the old rules (by the old rule's position) would now name an allow rule.
      '  - { name: elsewhere, allow: publish, topic: "elsewhere/#" }',
      '  - { name: no-blocked, deny: publish, topic: "devices/{client_id}/blocked" }',
      '  - { name: own, allow: all, topic: "devices/{client_id}/#" }',
      '  - { name: rest, deny: all, topic: "#" }',
    ])
    expect(moat.reload()).toBe(true)
    // The revocation went to the broker on the client's behalf; the client sees no UNSUBACK.
    await expect.poll(() => broker.received(id).filter((r) => r === 'unsubscribe')).toHaveLength(1)
    expect(moat.stats.aclRevocations).toBe(1)
    await witness.publishAsync('news/today', 'after')
    await witness.publishAsync(`devices/${id}/cmd`, 'barrier')
    // The first thing the client receives after the reload is the barrier: no news, no UNSUBACK.
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'publish', topic: `devices/${id}/cmd` })

    // The next publish follows the new rule.
    raw.send(generate({ cmd: 'publish', topic: `devices/${id}/blocked`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    raw.send(generate({ cmd: 'publish', topic: `devices/${id}/open`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    await seen.waitForTopic(`devices/${id}/open`)
    expect(seen.messages.filter((m) => m.topic === `devices/${id}/blocked`).map((m) => m.payload.toString())).toEqual(['before'])

    // An invalid file: the running rules stay.
    writePolicy(['rules:', '  - { allow: publish, topic: "devices/{clientid}/#" }'])
    expect(moat.reload()).toBe(false)
    expect(moat.stats.configReloadFailures).toBe(1)
    raw.send(generate({ cmd: 'publish', topic: `devices/${id}/blocked`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    raw.send(generate({ cmd: 'publish', topic: `devices/${id}/open2`, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    await seen.waitForTopic(`devices/${id}/open2`)
    expect(seen.messages.filter((m) => m.topic === `devices/${id}/blocked`)).toHaveLength(1)
    expect(broker.received(id).filter((r) => r === `publish devices/${id}/blocked`)).toHaveLength(1)
    raw.destroy()
  })
})
