/**
 * A reload reaches open sessions for their right to connect too: a user removed from the password
 * file is disconnected at once (5.0: DISCONNECT 0x87, not authorized), the broker sees the
 * connection end, and the other users stay connected.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashPassword } from '../../src/auth/password-hash.js'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'

const kind = brokerKinds().includes('mosquitto') ? 'mosquitto' : 'aedes'
const version = kind === 'mosquitto' ? 5 : 4

describe(`auth after a reload (${kind})`, () => {
  let broker: TestBroker
  let moat: Moat
  let dir: string

  async function writeUsers(users: string[]): Promise<void> {
    const lines = await Promise.all(users.map(async (u) => `${u}:${await hashPassword(Buffer.from('pw'), { N: 1024, r: 8, p: 1 })}`))
    writeFileSync(join(dir, 'passwd'), lines.join('\n') + '\n')
  }

  async function login(user: string): Promise<{ raw: RawClient; id: string }> {
    const id = uid(user)
    const raw = new RawClient(moat.address().port, version)
    await raw.connected()
    raw.send(connectPacket(id, version, { username: user, password: Buffer.from('pw') }))
    const connack = await raw.nextPacket() as { reasonCode?: number; returnCode?: number }
    expect(connack.reasonCode ?? connack.returnCode).toBe(0)
    return { raw, id }
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    dir = mkdtempSync(join(tmpdir(), 'moat-auth-reload-'))
    await writeUsers(['alice', 'bob'])
    writeFileSync(join(dir, 'moat.yaml'), [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { backends: [{ type: file, path: passwd }] }',
      'log: { level: silent }',
    ].join('\n'))
    moat = new Moat(loadConfig(join(dir, 'moat.yaml')), { logger: pino({ level: 'silent' }) })
    await moat.start()
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('disconnects a user removed from the password file; the others stay', async () => {
    const alice = await login('alice')
    const bob = await login('bob')
    await writeUsers(['alice'])
    expect(moat.reload()).toBe(true)
    const answer = await bob.raw.nextPacket()
    if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x87 })
    else expect(answer).toBeNull()
    await bob.raw.closed
    await broker.clientGone(bob.id)
    expect(moat.stats.closedFor('access_revoked')).toBe(1)
    // Alice is still there: her ping is answered by the broker.
    alice.raw.send(generate({ cmd: 'pingreq' }))
    expect(await alice.raw.nextPacket()).toMatchObject({ cmd: 'pingresp' })
    expect(alice.raw.isOpen).toBe(true)
    alice.raw.destroy()
  })
})
