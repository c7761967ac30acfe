/**
 * Client-id rules: a device cannot take over another identity's session by reusing its client id
 * (the holder stays connected, the broker never sees the intruder); the same identity may take
 * its own session over; pattern, length and binding to the user name. Each refusal: 5.0 0x85 /
 * 3.1.1 code 2, and nothing at the broker.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { mosquittoPasswd, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
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
    bound = await startMoat(broker, { auth: { backends, lockout: false, clientId: { bind: 'username-prefix', pattern: '[a-z0-9-]+', maxLength: 24 } } })
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
