/**
 * What the broker sees of the credentials. A Mosquitto that requires one fixed account
 * (allow_anonymous false, a password file with only `shared`): with `upstreamCredentials:
 * { username, password }` devices log in to Moat with their own secrets and the broker sees only
 * the shared account; with passthrough the broker sees (and refuses) the device's own; with strip
 * it sees no credentials at all. Mosquitto's connection log line names the user it saw (u'…').
 *
 * The broker's password file holds the shared account as a `$6$` line written by the test the way
 * Mosquitto 1.x did (SHA512(password ‖ salt)): Mosquitto accepting it shows the $6$ format Moat
 * reads is Mosquitto's.
 */
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { mosquittoPasswd, refused } from '../helpers/auth.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, uid } from '../helpers/clients.js'
import { mosquittoPath } from '../helpers/mosquitto.js'
import { startMoat } from '../helpers/moat.js'

function sha512Line(user: string, password: string): string {
  const salt = randomBytes(12)
  return `${user}:$6$${salt.toString('base64')}$${createHash('sha512').update(password).update(salt).digest().toString('base64')}\n`
}

if (mosquittoPath() === null && process.env.CI !== 'true') {
  it.skip('upstreamCredentials: needs mosquitto (a broker that requires a fixed account)', () => {})
} else {
  describe('upstreamCredentials in front of a Mosquitto that requires one shared account', () => {
    let dir: string
    let locked: TestBroker
    let open: TestBroker
    let replace: Moat
    let passthrough: Moat
    let strip: Moat

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'moat-upstream-creds-'))
      // Mosquitto started as root reads the file after dropping to its own user: make it readable.
      chmodSync(dir, 0o755)
      writeFileSync(join(dir, 'broker-passwd'), sha512Line('shared', 'shared-secret'), { mode: 0o644 })
      mosquittoPasswd(join(dir, 'devices'), { 'device-1': 'device-secret' })
      locked = await startBroker('mosquitto', { allowAnonymous: false, config: [`password_file ${join(dir, 'broker-passwd')}`] })
      open = await startBroker('mosquitto')
      const backends = [{ type: 'file', path: join(dir, 'devices') }]
      replace = await startMoat(locked, { auth: { backends, upstreamCredentials: { username: 'shared', password: 'shared-secret' } } })
      passthrough = await startMoat(locked, { auth: { backends } })
      strip = await startMoat(open, { auth: { backends, upstreamCredentials: 'strip' } })
    })

    afterAll(async () => {
      for (const m of [replace, passthrough, strip]) await m?.shutdown(0)
      await locked?.stop()
      await open?.stop()
      rmSync(dir, { recursive: true, force: true })
    })

    const connectLine = (broker: TestBroker, clientId: string): string | undefined =>
      broker.logs!().find((l) => l.startsWith('New client connected') && l.includes(` as ${clientId} `))

    for (const version of [4, 5] as const) {
      it(`replace: the device logs in with its own secret, the broker sees only the shared account (MQTT ${version === 5 ? '5.0' : '3.1.1'})`, async () => {
        const clientId = uid('dev')
        const client = await connect(replace.address().port, { clientId, username: 'device-1', password: 'device-secret', protocolVersion: version })
        await client.publishAsync(`creds/${clientId}`, 'x', { qos: 1 })
        expect(locked.received(clientId)).toEqual(['connect', `publish creds/${clientId}`])
        expect(connectLine(locked, clientId)).toContain("u'shared'")
        expect(locked.logs!().join('\n')).not.toContain('device-1')
        expect(replace.sessionInfo().find((s) => s.clientId === clientId)?.username).toBe('device-1')
        await client.endAsync()
      })
    }

    it('replace still checks the device: a wrong device password never reaches the broker', async () => {
      const before = locked.connections()
      expect(await refused(replace.address().port, { clientId: uid('dev'), username: 'device-1', password: 'wrong' })).toBe(4)
      expect(locked.connections()).toBe(before)
    })

    it('passthrough: the broker sees the device credentials and refuses them (it requires the shared account)', async () => {
      const clientId = uid('dev')
      const before = locked.logs!().filter((l) => /not authorised/.test(l)).length
      expect(await refused(passthrough.address().port, { clientId, username: 'device-1', password: 'device-secret' })).toBe(5)
      // Mosquitto refuses before it knows the client id: CONNACK 5, "Client <unknown> … not authorised".
      await expect.poll(() => locked.logs!().filter((l) => /^Client <unknown> disconnected, not authorised/.test(l)).length).toBe(before + 1)
      expect(locked.received(clientId)).toEqual([])
    })

    it('strip: the broker sees a CONNECT without user name or password', async () => {
      const clientId = uid('dev')
      const client = await connect(strip.address().port, { clientId, username: 'device-1', password: 'device-secret', protocolVersion: 5 })
      await client.publishAsync(`creds/${clientId}`, 'x', { qos: 1 })
      expect(open.received(clientId)).toEqual(['connect', `publish creds/${clientId}`])
      const line = connectLine(open, clientId)!
      expect(line).toBeDefined()
      expect(line).not.toContain("u'")
      await client.endAsync()
    })
  })
}
