/**
 * The probe of `moat audit --target` and Moat's lockout, with real processes: the probe run twice
 * against a Moat with its default lockout does not ban the address it runs from (a real user there
 * still gets in); it says before it starts how many logins it will try, and --no-credentials tries
 * none. And a single Moat that bans an address or a user name says so in an audit line
 * (`lockout_ban`, the address and user name, never the password).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultCredentials } from '../../src/audit/probe.js'
import { DEFAULT_LOCKOUT } from '../../src/config/auth-schema.js'
import { attempt, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { runCli } from '../helpers/cli.js'
import { shortId } from '../helpers/clients.js'
import { passwordAuth } from '../helpers/moat.js'
import { MoatProcess } from '../helpers/moat-process.js'

let broker: TestBroker
let dir: string

beforeAll(async () => {
  broker = await startBroker(brokerKinds()[0]!)
  dir = mkdtempSync(join(tmpdir(), 'moat-lockout-'))
})

afterAll(async () => {
  await broker?.stop()
  rmSync(dir, { recursive: true, force: true })
})

/** A Moat process with alice (password `pw`) in a password file, and `lockout` as given (default: the default). */
async function moatWithAlice(name: string, lockout?: Record<string, unknown>): Promise<MoatProcess> {
  const auth = await passwordAuth(['alice'])
  return MoatProcess.start(dir, name, {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: '127.0.0.1', port: broker.port },
    auth: { ...auth, ...(lockout === undefined ? {} : { lockout }) },
  })
}

const badCredentials = (moat: MoatProcess): number => moat.logs.filter((l) => l.event === 'connect_refused' && l.reason === 'bad_credentials').length

describe('moat audit --target against a Moat with the default lockout', () => {
  let moat: MoatProcess

  beforeAll(async () => {
    moat = await moatWithAlice('default-lockout.yaml')
  })

  afterAll(async () => {
    await moat?.stop()
  })

  it('tries few enough logins that two runs stay under the default lockout', () => {
    expect(2 * defaultCredentials.length).toBeLessThan(DEFAULT_LOCKOUT.maxFailures)
  })

  it('run twice, says each time what it will try, and the real user from the same address still gets in', async () => {
    for (let run = 1; run <= 2; run++) {
      const result = await runCli(['audit', '--target', `127.0.0.1:${moat.port}`])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr).toBe(`moat audit: probing 127.0.0.1:${moat.port}: one anonymous login, then, if it is refused, up to 4 default credentials ` +
        "(admin/admin, admin/password, guest/guest, mosquitto/mosquitto); each refused one counts towards the target's lockout of your address " +
        "(Moat's default: 10 within 60 s); --no-credentials skips them\n")
      expect(result.stdout).toMatch(/No session obtained/)
      await expect.poll(() => badCredentials(moat)).toBe(run * defaultCredentials.length)
    }
    const id = shortId()
    const alice = await attempt(moat.port, { clientId: id, username: 'alice', password: 'pw' })
    expect(alice.code).toBe(0)
    alice.client.destroy()
    expect(moat.logs.filter((l) => l.event === 'lockout_ban')).toEqual([])
    // The broker's side: alice reached it; no probe connection ever did.
    await broker.clientGone(id)
    expect(broker.received(id)[0]).toBe('connect')
    for (const [username] of defaultCredentials) expect(moat.logs.filter((l) => l.event === 'session_open' && l.username === username)).toEqual([])
  })

  it('--no-credentials says so and makes no failed login at all', async () => {
    const before = badCredentials(moat)
    const result = await runCli(['audit', '--target', `127.0.0.1:${moat.port}`, '--no-credentials', '--json'])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(`moat audit: probing 127.0.0.1:${moat.port} without credentials (--no-credentials): one anonymous login, no failed login to count towards a lockout\n`)
    const report = JSON.parse(result.stdout) as { findings: Array<{ id: string; risk: string }> }
    expect(report.findings.find((f) => f.id === 'no-session')?.risk).toMatch(/default credentials were not tried \(--no-credentials\)/)
    // A refused anonymous login is no failed login: the lockout counts credentials only.
    await expect.poll(() => moat.logs.filter((l) => l.event === 'connect_refused').length).toBeGreaterThan(0)
    expect(badCredentials(moat)).toBe(before)
  })
})

describe('a single Moat that bans', () => {
  let moat: MoatProcess

  beforeAll(async () => {
    moat = await moatWithAlice('ban.yaml', { maxFailures: 3, window: '1m', ban: '5m' })
  })

  afterAll(async () => {
    await moat?.stop()
  })

  it('logs lockout_ban as an audit line with the address and user name, not the password; the banned user is refused and the broker never sees it', async () => {
    for (let i = 0; i < 3; i++) expect(await refused(moat.port, { clientId: shortId(), username: 'alice', password: 'guess-number-' + i })).toBe(4)
    await expect.poll(() => moat.logs.filter((l) => l.event === 'lockout_ban').length).toBe(2)
    const bans = moat.logs.filter((l) => l.event === 'lockout_ban')
    expect(bans).toEqual([
      expect.objectContaining({ audit: true, kind: 'address', address: '127.0.0.1', username: 'alice', failures: 3, windowMs: 60_000, banMs: 300_000 }),
      expect.objectContaining({ audit: true, kind: 'username', address: '127.0.0.1', username: 'alice', failures: 3 }),
    ])
    expect(JSON.stringify(moat.logs)).not.toContain('guess-number-')
    // The client's side: the right password is refused now, as a wrong one is (bad credentials).
    const id = shortId()
    expect(await refused(moat.port, { clientId: id, username: 'alice', password: 'pw' })).toBe(4)
    expect(moat.logs.filter((l) => l.event === 'connect_refused' && l.reason === 'banned')).toHaveLength(1)
    // The broker's side: nothing of alice.
    expect(broker.received(id)).toEqual([])
  })
})
