/**
 * Moat in front of a Mosquitto that authenticates clients itself (its own password_file):
 * `auth.unknownCredentials: broker` lets credentials no Moat backend knows through to the broker,
 * whose CONNACK (accept or refusal, byte for byte) reaches the client; a Moat backend that denies
 * still refuses before the broker sees anything. `auth.badCredentialsReply: not-authorized`
 * answers a wrong password with Mosquitto 2.0's own bytes. Both sides shown: the client's bytes,
 * and the broker's log.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { attempt, mosquittoPasswd } from '../helpers/auth.js'
import { startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'
import { mosquittoPath } from '../helpers/mosquitto.js'

/** Every byte one CONNECT (the same client id and credentials each time) gets back until the connection closes. */
async function answer(port: number, clientId: string, version: ProtocolLevel, username: string, password: string): Promise<string> {
  const { client } = await attempt(port, { clientId, version, username, password })
  await client.closed
  return Buffer.concat(client.bytes).toString('hex')
}

describe.skipIf(mosquittoPath() === null)('in front of a Mosquitto with its own password_file', () => {
  let dir: string
  let brokerPasswd: string
  let moatPasswd: string
  let broker: TestBroker
  let passing: Moat
  let withFile: Moat
  let notAuthorized: Moat

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-auth-broker-'))
    chmodSync(dir, 0o755) // Mosquitto started as root reads the password file as its own user
    brokerPasswd = join(dir, 'broker-passwd')
    mosquittoPasswd(brokerPasswd, { alice: 'broker-secret', bob: 'bob-secret' })
    chmodSync(brokerPasswd, 0o644)
    // Moat's own file knows alice with another password, and carol, whom the broker knows too.
    moatPasswd = join(dir, 'moat-passwd')
    mosquittoPasswd(moatPasswd, { alice: 'moat-secret', carol: 'carol-secret' })
    broker = await startBroker('mosquitto', { allowAnonymous: false, config: [`password_file ${brokerPasswd}`] })
    passing = await startMoat(broker, { auth: { anonymous: true, unknownCredentials: 'broker', lockout: false } })
    withFile = await startMoat(broker, { auth: { backends: [{ type: 'file', path: moatPasswd }], unknownCredentials: 'broker', lockout: false } })
    notAuthorized = await startMoat(broker, { auth: { backends: [{ type: 'file', path: moatPasswd }], badCredentialsReply: 'not-authorized', lockout: false } })
  })

  afterAll(async () => {
    await Promise.all([passing, withFile, notAuthorized].map((m) => m?.shutdown(0)))
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  for (const version of [4, 5] as const) {
    const v = version === 5 ? '5.0' : '3.1.1'

    it(`unknownCredentials: broker: a user the broker knows gets its CONNACK 0 and publishes to a subscriber on the broker (MQTT ${v})`, async () => {
      const topic = `auth-broker/${uid('t')}`
      const subscriber = await connect(broker.port, { username: 'bob', password: 'bob-secret', protocolVersion: version })
      const inbox = new Inbox(subscriber)
      await subscriber.subscribeAsync(topic, { qos: 1 })
      const clientId = uid('alice')
      const client = await connect(passing.address().port, { clientId, username: 'alice', password: 'broker-secret', protocolVersion: version })
      expect(passing.sessionInfo().find((s) => s.clientId === clientId)).toMatchObject({ username: 'alice', authenticatedBy: 'broker' })
      await client.publishAsync(topic, 'through moat', { qos: 1 })
      expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('through moat')
      await expect.poll(() => broker.received(clientId)).toEqual(['connect', `publish ${topic}`])
      await client.endAsync()
      await subscriber.endAsync()
    })

    it(`unknownCredentials: broker: a wrong password gets the broker's own refusal, byte for byte (MQTT ${v})`, async () => {
      const clientId = uid('wrong')
      const direct = await answer(broker.port, clientId, version, 'alice', 'not-it')
      expect(direct).toBe(version === 5 ? '2003008700' : '20020005')
      const before = broker.connections()
      const from = broker.logs!().length
      const closedBefore = passing.stats.closedFor('upstream_closed')
      const through = await answer(passing.address().port, clientId, version, 'alice', 'not-it')
      expect(through).toBe(direct)
      await expect.poll(() => passing.stats.closedFor('upstream_closed')).toBe(closedBefore + 1)
      // It was the broker that refused: it saw the connection and logged its refusal.
      expect(broker.connections()).toBe(before + 1)
      await expect.poll(() => broker.logs!().slice(from)).toEqual(expect.arrayContaining([
        expect.stringMatching(version === 5 ? /^Sending CONNACK to \S+ \(0, 135\)/ : /^Sending CONNACK to \S+ \(0, 5\)/),
        expect.stringMatching(/disconnected, not authorised/),
      ]))
      // An unknown user too: the broker answers, Moat passes it on.
      const unknown = uid('mallory')
      expect(await answer(passing.address().port, unknown, version, 'mallory', 'x')).toBe(await answer(broker.port, unknown, version, 'mallory', 'x'))
    })

    it(`unknownCredentials: broker: a Moat backend that denies still refuses at Moat; the broker never sees the CONNECT (MQTT ${v})`, async () => {
      const clientId = uid('denied')
      const before = broker.connections()
      // The broker would take this password; Moat's file knows alice with another one.
      expect(await answer(withFile.address().port, clientId, version, 'alice', 'broker-secret')).toBe(version === 5 ? '2003008600' : '20020004')
      expect(broker.connections()).toBe(before)
      expect(broker.received(clientId)).toEqual([])
      // A user Moat's file does not know goes to the broker, which knows bob.
      const bob = uid('bob')
      const client = await connect(withFile.address().port, { clientId: bob, username: 'bob', password: 'bob-secret', protocolVersion: version })
      expect(withFile.sessionInfo().find((s) => s.clientId === bob)).toMatchObject({ username: 'bob', authenticatedBy: 'broker' })
      await client.endAsync()
    })

    it(`badCredentialsReply: not-authorized: a wrong password refused by Moat's file backend gets Mosquitto's own bytes (MQTT ${v})`, async () => {
      const clientId = uid('na')
      const before = broker.connections()
      const moat = await answer(notAuthorized.address().port, clientId, version, 'alice', 'not-it')
      expect(moat).toBe(version === 5 ? '2003008700' : '20020005')
      expect(broker.connections()).toBe(before)
      expect(moat).toBe(await answer(broker.port, clientId, version, 'alice', 'not-it'))
      // An unknown user is refused the same way (no backend knows it, unknownCredentials: refuse).
      expect(await answer(notAuthorized.address().port, uid('na'), version, 'mallory', 'x')).toBe(moat)
    })
  }

  it('counts what it passed to the broker apart from what its backends allowed', () => {
    expect(passing.stats.auth.decided('passed_to_broker')).toBeGreaterThanOrEqual(6)
    expect(passing.stats.auth.decided('allowed')).toBe(0)
    expect(withFile.stats.auth.decided('bad_credentials')).toBe(2)
    expect(notAuthorized.stats.auth.decided('bad_credentials')).toBe(4)
  })
})
