/**
 * Password-file auth with a real `mosquitto_passwd` file (and the $6$ and scrypt formats), a real
 * Mosquitto behind Moat. Every refusal is shown from both sides: the client's CONNACK code, and
 * the broker never saw a connection from that client.
 */
import { createHash, randomBytes } from 'node:crypto'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashPassword } from '../../src/auth/password-hash.js'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { createLogger } from '../../src/log/logger.js'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { mosquittoPasswd, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, shortId, uid } from '../helpers/clients.js'
import { startMoat, testConfig } from '../helpers/moat.js'

/** A Mosquitto 1.x `$6$` line: SHA512(password ‖ salt), written here the way Mosquitto does. */
function sha512Line(user: string, password: string): string {
  const salt = randomBytes(12)
  const hash = createHash('sha512').update(password).update(salt).digest()
  return `${user}:$6$${salt.toString('base64')}$${hash.toString('base64')}\n`
}

const kind = brokerKinds()[0]!

describe(`file auth in front of ${kind}`, () => {
  let dir: string
  let passwd: string
  let broker: TestBroker
  let moat: Moat
  let port: number

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-auth-file-'))
    passwd = join(dir, 'passwd')
    mosquittoPasswd(passwd, { alice: 'alice-secret', bob: 'b0b:with colon' })
    appendFileSync(passwd, sha512Line('legacy', 'old-secret'))
    appendFileSync(passwd, `carol:${await hashPassword(Buffer.from('carol-secret'), { N: 1024, r: 8, p: 1 })}\n`)
    broker = await startBroker(kind)
    moat = await startMoat(broker, { auth: { backends: [{ type: 'file', path: passwd }], lockout: false } })
    port = moat.address().port
  })

  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  for (const version of [4, 5] as const) {
    const v = version === 5 ? '5.0' : '3.1.1'

    it(`admits the right passwords from a mosquitto_passwd file ($7$), $6$ and scrypt lines (MQTT ${v})`, async () => {
      for (const [username, password] of [['alice', 'alice-secret'], ['bob', 'b0b:with colon'], ['legacy', 'old-secret'], ['carol', 'carol-secret']]) {
        const clientId = uid(username!)
        const client = await connect(port, { clientId, username, password, protocolVersion: version })
        await client.publishAsync(`auth/${clientId}`, 'hi', { qos: 1 })
        await expect.poll(() => broker.received(clientId)).toEqual(['connect', `publish auth/${clientId}`])
        const info = moat.sessionInfo().find((s) => s.clientId === clientId)!
        expect(info).toMatchObject({ username, authenticatedBy: 'file' })
        await client.endAsync()
      }
    })

    const refusals: Array<[string, { username?: string; password?: string }, number, number]> = [
      ['a wrong password', { username: 'alice', password: 'alice-wrong' }, 4, 0x86],
      ['a wrong password for a $6$ user', { username: 'legacy', password: 'nope' }, 4, 0x86],
      ['a wrong password for a scrypt user', { username: 'carol', password: 'nope' }, 4, 0x86],
      ['a user name without a password', { username: 'alice' }, 4, 0x86],
      ['an unknown user', { username: 'mallory', password: 'alice-secret' }, 4, 0x86],
      ['no credentials at all (anonymous is off)', {}, 5, 0x87],
    ]
    for (const [what, credentials, code311, code5] of refusals) {
      if (version === 4 && credentials.username === undefined && credentials.password !== undefined) continue
      it(`refuses ${what} (MQTT ${v}: ${version === 5 ? '0x' + code5.toString(16) : code311}); the broker sees nothing`, async () => {
        const clientId = uid('refused')
        const before = broker.connections()
        const code = await refused(port, { clientId, version, ...credentials })
        expect(code).toBe(version === 5 ? code5 : code311)
        expect(broker.connections()).toBe(before)
        await expect.poll(() => broker.received(clientId)).toEqual([])
      })
    }
  }

  it('answers MQTT 3.1 (MQIsdp) clients with the 3.x return codes: 4 bad credentials, 5 no credentials; admits the right password', async () => {
    const before = broker.connections()
    expect(await refused(port, { clientId: shortId(), version: 3, username: 'alice', password: 'nope' })).toBe(4)
    expect(await refused(port, { clientId: shortId(), version: 3 })).toBe(5)
    expect(broker.connections()).toBe(before)
    const client = await connect(port, { clientId: shortId(), username: 'alice', password: 'alice-secret', protocolVersion: 3 })
    await client.endAsync()
  })

  it('refuses the right password sent for another user name', async () => {
    const before = broker.connections()
    expect(await refused(port, { clientId: uid('x'), username: 'bob', password: 'alice-secret' })).toBe(4)
    expect(broker.connections()).toBe(before)
  })

  it('counts attempts by backend and outcome, and decisions, at /metrics-level stats', () => {
    const auth = moat.stats.auth
    expect(auth.decided('allowed')).toBeGreaterThanOrEqual(8)
    expect(auth.decided('bad_credentials')).toBeGreaterThanOrEqual(10)
    expect(auth.decided('not_authorized')).toBeGreaterThanOrEqual(2)
  })

  it('keeps honest clients working while others fail', async () => {
    const clientId = uid('honest')
    const client = await connect(port, { clientId, username: 'alice', password: 'alice-secret' })
    const inbox = new Inbox(client)
    await client.subscribeAsync(`auth/${clientId}`)
    await Promise.all([1, 2, 3].map(() => refused(port, { clientId: uid('bad'), username: 'alice', password: 'x' })))
    await client.publishAsync(`auth/${clientId}`, 'still here')
    expect((await inbox.waitForTopic(`auth/${clientId}`)).payload.toString()).toBe('still here')
    await client.endAsync()
  })

  it('answers a CONNECT+PUBLISH sent in one write with a wrong password with CONNACK 4 only; the PUBLISH never reaches the broker', async () => {
    const clientId = uid('pipelined')
    const client = new RawClient(port, 4)
    await client.connected()
    client.send(Buffer.concat([
      generate(connectPacket(clientId, 4, { username: 'alice', password: Buffer.from('nope') })),
      generate({ cmd: 'publish', topic: `auth/${clientId}`, payload: Buffer.from('sneaky'), qos: 0, retain: false, dup: false }),
    ]))
    const connack = await client.nextPacket()
    expect(connack).toMatchObject({ cmd: 'connack', returnCode: 4 })
    expect(await client.nextPacket()).toBeNull() // closed, nothing else
    await expect.poll(() => broker.received(clientId)).toEqual([])
  })
})

describe('file auth and reload', () => {
  it('re-reads the password file on reload: a new user gets in, a removed one no longer does; a broken file keeps the running policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-auth-reload-'))
    const broker = await startBroker('aedes')
    const passwd = join(dir, 'passwd')
    mosquittoPasswd(passwd, { old: 'old-secret' })
    const file = join(dir, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { backends: [{ type: file, path: passwd }], lockout: false }', // relative to moat.yaml
      'log: { level: silent }',
    ].join('\n'))
    const moat = new Moat(loadConfig(file), { logger: pino({ level: 'silent' }) })
    await moat.start()
    try {
      const port = moat.address().port
      await (await connect(port, { clientId: uid('old'), username: 'old', password: 'old-secret' })).endAsync()
      expect(await refused(port, { clientId: uid('new'), username: 'new', password: 'new-secret' })).toBe(4)
      mosquittoPasswd(passwd, { new: 'new-secret' }) // -c: the file now holds only `new`
      expect(moat.reload()).toBe(true)
      await (await connect(port, { clientId: uid('new'), username: 'new', password: 'new-secret' })).endAsync()
      expect(await refused(port, { clientId: uid('old'), username: 'old', password: 'old-secret' })).toBe(4)
      writeFileSync(passwd, 'new:not-a-hash\n')
      expect(moat.reload()).toBe(false)
      await (await connect(port, { clientId: uid('new'), username: 'new', password: 'new-secret' })).endAsync()
    } finally {
      await moat.shutdown(0)
      await broker.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('secrets in logs', () => {
  it('never writes a password to a log line, even at trace level', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-auth-logs-'))
    const broker = await startBroker('aedes')
    mosquittoPasswd(join(dir, 'passwd'), { alice: 'Sup3r-Secret-Pw' })
    const lines: string[] = []
    const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(chunk.toString()); done() } })
    const moat = new Moat(testConfig(broker, { auth: { backends: [{ type: 'file', path: join(dir, 'passwd') }], lockout: false } }), { logger: createLogger('trace', sink) })
    await moat.start()
    try {
      const port = moat.address().port
      await (await connect(port, { clientId: uid('ok'), username: 'alice', password: 'Sup3r-Secret-Pw' })).endAsync()
      expect(await refused(port, { clientId: uid('bad'), username: 'alice', password: 'Wr0ng-Secret-Pw' })).toBe(4)
      await expect.poll(() => lines.some((l) => l.includes('"event":"client_admitted"') && l.includes('"username":"alice"'))).toBe(true)
      await expect.poll(() => lines.some((l) => l.includes('"reason":"bad_credentials"'))).toBe(true)
      const all = lines.join('')
      expect(all).not.toContain('Sup3r-Secret-Pw')
      expect(all).not.toContain('Wr0ng-Secret-Pw')
      expect(all).not.toContain(Buffer.from('Sup3r-Secret-Pw').toString('base64'))
    } finally {
      await moat.shutdown(0)
      await broker.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
