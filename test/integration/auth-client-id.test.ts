/**
 * Client-id rules: a device cannot take over another identity's session by reusing its client id
 * (the holder stays connected, the broker never sees the intruder); the same identity may take
 * its own session over; pattern, length and binding to the user name (a prefix binding ends the
 * user name at a separator: `dev1` is not `dev10`). Each refusal: 5.0 0x85 / 3.1.1 code 2, and
 * nothing at the broker.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { generate, type IConnackPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { aclFrom } from '../helpers/acl.js'
import { mosquittoPasswd, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, connectWithInbox, Inbox, RawClient, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const kind = brokerKinds()[0]!

describe(`client-id rules in front of ${kind}`, () => {
  let dir: string
  let broker: TestBroker
  let moat: Moat
  let bound: Moat

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-clientid-'))
    mosquittoPasswd(join(dir, 'passwd'), { alice: 'alice-secret', bob: 'bob-secret' })
    broker = await startBroker(kind)
    const backends = [{ type: 'file', path: join(dir, 'passwd') }]
    moat = await startMoat(broker, { auth: { backends, lockout: false } })
    bound = await startMoat(broker, { auth: { backends, lockout: false, clientId: { bind: 'username-prefix', separator: '-', pattern: '[a-z0-9-]+', maxLength: 24 } } })
  })

  afterAll(async () => {
    await moat?.shutdown(0)
    await bound?.shutdown(0)
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('refuses a takeover of a live client id by another identity; the holder stays connected and the broker never sees the intruder', async () => {
    const port = moat.address().port
    const clientId = uid('device')
    const topic = `takeover/${clientId}`
    const holder = await connect(port, { clientId, username: 'alice', password: 'alice-secret', protocolVersion: 5 })
    const inbox = new Inbox(holder)
    await holder.subscribeAsync(topic)
    const before = broker.connections()
    expect(await refused(port, { clientId, username: 'bob', password: 'bob-secret', version: 5 })).toBe(0x85)
    expect(await refused(port, { clientId, username: 'bob', password: 'bob-secret', version: 4 })).toBe(2)
    expect(await refused(port, { clientId, version: 4 })).toBe(5) // no credentials at all
    expect(broker.connections()).toBe(before)
    await expect.poll(() => broker.received(clientId).filter((p) => p === 'connect')).toHaveLength(1)
    await holder.publishAsync(topic, 'still mine', { qos: 1 })
    expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('still mine')
    expect(holder.connected).toBe(true)
    expect(moat.stats.auth.decided('client_id_taken')).toBe(2)
    await holder.endAsync()
  })

  it('lets the same identity take its own session over (a reconnect), as MQTT specifies', async () => {
    const port = moat.address().port
    const clientId = uid('device')
    const first = await connect(port, { clientId, username: 'alice', password: 'alice-secret' })
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()))
    const second = await connect(port, { clientId, username: 'alice', password: 'alice-secret' })
    await closed // the broker closed the old connection: it took the session over
    await expect.poll(() => broker.received(clientId).filter((p) => p === 'connect')).toHaveLength(2)
    await second.endAsync()
    first.end(true)
  })

  it('frees a client id when its holder leaves', async () => {
    const port = moat.address().port
    const clientId = uid('device')
    const alice = await connect(port, { clientId, username: 'alice', password: 'alice-secret' })
    await alice.endAsync()
    await expect.poll(() => moat.sessionInfo().some((s) => s.clientId === clientId)).toBe(false)
    const bob = await connect(port, { clientId, username: 'bob', password: 'bob-secret' })
    await bob.endAsync()
  })

  const refusedIds: Array<[string, string]> = [
    ['a client id bound to another user name', 'bob-1'],
    ['a client id that does not start with the user name', 'device-alice'],
    ['a client id that starts with the user name but does not end it at a separator', 'alice2'],
    ['a client id outside the pattern', 'alice_UPPER'],
    ['a client id over maxLength', `alice-${'x'.repeat(30)}`],
  ]
  for (const [what, clientId] of refusedIds) {
    it(`refuses ${what} (5.0 0x85, 3.1.1 2); the broker sees nothing`, async () => {
      const port = bound.address().port
      const before = broker.connections()
      expect(await refused(port, { clientId, username: 'alice', password: 'alice-secret', version: 5 })).toBe(0x85)
      expect(await refused(port, { clientId, username: 'alice', password: 'alice-secret', version: 4 })).toBe(2)
      expect(broker.connections()).toBe(before)
      await expect.poll(() => broker.received(clientId)).toEqual([])
    })
  }

  it('admits a client id bound to its own user name', async () => {
    const clientId = `alice-${Math.random().toString(36).slice(2, 8)}`
    const client = await connect(bound.address().port, { clientId, username: 'alice', password: 'alice-secret' })
    await expect.poll(() => broker.received(clientId)).toEqual(['connect'])
    await client.endAsync()
  })

  it('a wrong password with a bound client id is still only "bad credentials" (no hint about the id)', async () => {
    expect(await refused(bound.address().port, { clientId: 'bob-1', username: 'alice', password: 'wrong', version: 5 })).toBe(0x86)
  })
})

/**
 * The README's pairing, `bind: username-prefix` with an ACL on `devices/{client_id}/#`, where one
 * user name is a prefix of another's client id: `dev1` must not become device `dev10` (publish in
 * its tree, read it, or resume its persistent session and take its queued messages).
 */
describe.runIf(kind === 'mosquitto')('username-prefix binding with {client_id} ACL rules (mosquitto)', () => {
  let dir: string
  let broker: TestBroker
  let moat: Moat
  let witness: MqttClient
  let seen: Inbox
  const secrets = { dev1: 'dev1-secret', dev10: 'dev10-secret', 'dev1-x': 'dev1-x-secret' }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-clientid-prefix-'))
    mosquittoPasswd(join(dir, 'passwd'), secrets)
    broker = await startBroker('mosquitto')
    moat = await startMoat(broker, {
      auth: { backends: [{ type: 'file', path: join(dir, 'passwd') }], lockout: false, clientId: { bind: 'username-prefix', separator: '-' } },
      acl: aclFrom([
        { name: 'own-tree', allow: 'all', topic: 'devices/{client_id}/#' },
        { name: 'nothing-else', deny: 'all', topic: '#' },
      ]),
    })
    // Connected to the broker directly: sees everything published into the device trees, Moat or not.
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('devices/#', { qos: 1 })
  })

  afterAll(async () => {
    await witness?.endAsync()
    await moat?.shutdown(0)
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** dev1 tries to resume dev10's session, with a publish into dev10's tree right behind its CONNECT. */
  async function impersonate(version: 4 | 5): Promise<{ code: number | null; packets: string[] }> {
    const raw = new RawClient(moat.address().port, version)
    await raw.connected()
    raw.send(connectPacket('dev10', version, {
      username: 'dev1', password: Buffer.from(secrets.dev1), clean: false,
      ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    }))
    raw.send(generate({ cmd: 'publish', topic: `devices/dev10/forged-${version}`, payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false }, { protocolVersion: version }))
    const connack = await raw.nextPacket() as IConnackPacket | null
    await raw.closed
    return { code: connack === null ? null : (version === 5 ? connack.reasonCode : connack.returnCode) ?? null, packets: raw.packets.map((p) => p.cmd) }
  }

  it('dev1 cannot act as dev10: refused (5.0 0x85, 3.1.1 2), no queued message of dev10, nothing published into devices/dev10/', async () => {
    const port = moat.address().port
    // dev10's persistent session with a subscription, then a message queued for it while it is away.
    const dev10 = await connect(port, { clientId: 'dev10', username: 'dev10', password: secrets.dev10, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 } })
    await dev10.subscribeAsync('devices/dev10/cmd', { qos: 1 })
    await dev10.endAsync()
    await broker.clientGone('dev10')
    await witness.publishAsync('devices/dev10/cmd', 'queued for dev10', { qos: 1 })
    await seen.waitForTopic('devices/dev10/cmd')
    const connectsBefore = broker.received('dev10').filter((r) => r === 'connect').length

    expect(await impersonate(5)).toEqual({ code: 0x85, packets: ['connack'] })
    expect(await impersonate(4)).toEqual({ code: 2, packets: ['connack'] })
    expect(moat.stats.auth.decided('client_id_refused')).toBe(2)

    // Barrier: dev1 on a client id of its own publishes after the attempts; the broker saw only that.
    const own = await connect(port, { clientId: 'dev1-a', username: 'dev1', password: secrets.dev1 })
    await own.publishAsync('devices/dev1-a/barrier', 'after', { qos: 1 })
    await seen.waitForTopic('devices/dev1-a/barrier')
    await own.endAsync()
    expect(seen.messages.map((m) => m.topic).filter((t) => t.startsWith('devices/dev10/'))).toEqual(['devices/dev10/cmd'])
    expect(broker.received('dev10').filter((r) => r === 'connect')).toHaveLength(connectsBefore)
    expect(broker.received('dev10').filter((r) => r.startsWith('publish'))).toEqual([])

    // dev10's session was never resumed by anyone else: the queued message is still there for dev10.
    const { client, inbox, connack } = await connectWithInbox(port, { clientId: 'dev10', username: 'dev10', password: secrets.dev10, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 0 } })
    expect(connack.sessionPresent).toBe(true)
    expect((await inbox.waitForTopic('devices/dev10/cmd')).payload.toString()).toBe('queued for dev10')
    await client.endAsync()
  })

  it('dev1 as dev1-a works end to end: publishes into its own tree and reads it', async () => {
    const port = moat.address().port
    const client = await connect(port, { clientId: 'dev1-a', username: 'dev1', password: secrets.dev1, protocolVersion: 5 })
    const inbox = new Inbox(client)
    expect((await client.subscribeAsync('devices/dev1-a/#', { qos: 1 }))[0]!.qos).toBe(1)
    await client.publishAsync('devices/dev1-a/temp', '21.5', { qos: 1 })
    expect((await seen.waitForTopic('devices/dev1-a/temp')).payload.toString()).toBe('21.5')
    await witness.publishAsync('devices/dev1-a/cmd', 'reboot', { qos: 1 })
    expect((await inbox.waitForTopic('devices/dev1-a/cmd')).payload.toString()).toBe('reboot')
    await client.endAsync()
  })

  it('a user name holding the separator owns no client id (dev1-x would share dev1\'s ids); the broker sees nothing', async () => {
    const port = moat.address().port
    const before = broker.connections()
    expect(await refused(port, { clientId: 'dev1-x', username: 'dev1-x', password: secrets['dev1-x'], version: 5 })).toBe(0x85)
    expect(await refused(port, { clientId: 'dev1-x-a', username: 'dev1-x', password: secrets['dev1-x'], version: 4 })).toBe(2)
    expect(broker.connections()).toBe(before)
    expect(broker.received('dev1-x')).toEqual([])
    expect(broker.received('dev1-x-a')).toEqual([])
  })
})
