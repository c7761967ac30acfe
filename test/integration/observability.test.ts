/**
 * What an operator sees of a scripted session, checked exactly: a good login, an allowed and a
 * denied publish, a bad password. Each counter on /metrics moves by exactly the right amount, and
 * the bad password leaves one audit line naming the reason, the code and the client's address,
 * with no trace of the secret anywhere in the log.
 */
import { readFileSync } from 'node:fs'
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aclFrom } from '../helpers/acl.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { configWith, listener, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'
import { passwordAuth } from '../helpers/moat.js'

const SECRET = 'Tr0ub4dor&3-never-log-me'
const WRONG = 'guess-123-never-log-me'

describe('metrics and audit log of a scripted session', () => {
  let broker: TestBroker
  let m: LoggedMoat
  let admin: string

  beforeAll(async () => {
    broker = await startBroker('aedes')
    m = await startMoatWith(configWith(broker, [listener('edge', 'mqtt')], {
      admin: { host: '127.0.0.1', port: 0 },
      auth: await passwordAuth(['alice', 'mallory'], SECRET),
      acl: aclFrom([{ name: 'no-firmware', deny: 'publish', topic: 'firmware/#' }, { allow: 'all', topic: '#' }]),
    }))
    admin = `http://127.0.0.1:${m.moat.adminAddress()!.port}`
  })
  afterAll(async () => {
    await m?.moat.shutdown(0)
    await broker?.stop()
  })

  async function scrape(): Promise<Map<string, number>> {
    const text = await (await fetch(`${admin}/metrics`)).text()
    const samples = new Map<string, number>()
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || line === '') continue
      const at = line.lastIndexOf(' ')
      samples.set(line.slice(0, at), Number(line.slice(at + 1)))
    }
    return samples
  }

  async function login(user: string, password: string): Promise<{ raw: RawClient; code: number; id: string }> {
    const id = uid(user)
    const raw = new RawClient(m.moat.address('edge').port, 4)
    await raw.connected()
    raw.send(connectPacket(id, 4, { username: user, password: Buffer.from(password) }))
    const connack = await raw.nextPacket() as { returnCode: number }
    return { raw, code: connack.returnCode, id }
  }

  it('moves each counter by exactly the right amount and writes one audit line without the secret', async () => {
    const before = await scrape()
    const alice = await login('alice', SECRET)
    expect(alice.code).toBe(0)
    alice.raw.send(generate({ cmd: 'publish', topic: 'firmware/push', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    alice.raw.send(generate({ cmd: 'publish', topic: 'telemetry/t', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    await expect.poll(() => broker.received(alice.id)).toContain('publish telemetry/t')
    const mallory = await login('mallory', WRONG)
    expect(mallory.code).toBe(4) // bad user name or password
    await mallory.raw.closed
    alice.raw.destroy()
    await broker.clientGone(alice.id)
    await expect.poll(() => m.moat.sessionCount).toBe(0)
    const after = await scrape()

    const delta = (sample: string): number => (after.get(sample) ?? 0) - (before.get(sample) ?? 0)
    expect({
      accepted: delta('moat_connections_accepted_total{listener="edge"}'),
      allowed: delta('moat_auth_decisions_total{decision="allowed"}'),
      badCredentials: delta('moat_auth_decisions_total{decision="bad_credentials"}'),
      fileAllow: delta('moat_auth_attempts_total{backend="file",outcome="allow"}'),
      fileDeny: delta('moat_auth_attempts_total{backend="file",outcome="deny"}'),
      publishes: delta('moat_packets_total{direction="client_to_broker",packet_type="publish"}'),
      aclDenied: delta('moat_packets_rejected_total{reason="acl_denied"}'),
      closedBadCredentials: delta('moat_sessions_closed_total{reason="bad_credentials"}'),
      upstreamConnects: delta('moat_upstream_connects_total'),
      deniedAclReject: delta('moat_denials_total{reason="acl_denied",action="reject"}'),
      deniedAuthDisconnect: delta('moat_denials_total{reason="bad_credentials",action="disconnect"}'),
      open: after.get('moat_sessions_open'),
    }).toEqual({
      accepted: 2, allowed: 1, badCredentials: 1, fileAllow: 1, fileDeny: 1,
      publishes: 2, aclDenied: 1, closedBadCredentials: 1, upstreamConnects: 1, open: 0,
      deniedAclReject: 1, deniedAuthDisconnect: 1,
    })

    const audit = m.logs.filter((l) => l.audit === true && l.clientId === mallory.id)
    expect(audit).toHaveLength(1)
    expect(audit[0]).toMatchObject({ event: 'connect_refused', reason: 'bad_credentials', code: 4, username: 'mallory', remote: expect.stringMatching(/^(::ffff:)?127\.0\.0\.1:\d+$/) })
    // The fail2ban filter shipped in deploy/ matches the line as pino writes it, and finds the address.
    const filter = readFileSync(new URL('../../deploy/fail2ban/filter.d/moat.conf', import.meta.url), 'utf8')
    const failregex = filter.split('\n').find((l) => l.startsWith('failregex = '))!.slice('failregex = '.length)
    const match = new RegExp(failregex.replace('<ADDR>', '(?<host>[0-9a-fA-F:.]+?)')).exec(JSON.stringify(audit[0]))
    expect(match?.groups?.host).toMatch(/^(::ffff:)?127\.0\.0\.1$/)
    const denial = m.logs.filter((l) => l.audit === true && l.clientId === alice.id)
    expect(denial).toEqual([expect.objectContaining({ event: 'packet_refused', reason: 'acl_denied', code: 0x87, rule: 'no-firmware', topic: 'firmware/push' })])
    // Two info lines per connection, as docs/operations.md says: who connected (written once the client
    // has its CONNACK), and how the session ended, with what it moved.
    const aliceLines = m.logs.filter((l) => l.sid !== undefined && l.sid === m.logs.find((s) => s.event === 'session_open' && s.clientId === alice.id)?.sid)
    expect(aliceLines.filter((l) => l.level === 'info').map((l) => l.event)).toEqual(['session_open', 'session_end'])
    expect(aliceLines.find((l) => l.event === 'session_open')).toMatchObject({ event: 'session_open', code: 0, clientId: alice.id, username: 'alice', authenticatedBy: 'file', version: 4, listener: 'edge' })
    const everything = JSON.stringify(m.logs)
    expect(everything).not.toContain(WRONG)
    expect(everything).not.toContain(SECRET)
  })
})
