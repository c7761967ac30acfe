import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { SessionChecks } from '../../../src/checks/chain.js'
import { Stats } from '../../../src/stats/stats.js'
import { PacketType } from '../../../src/protocol/packet-type.js'
import { AuditRecord } from '../../../src/session/audit-record.js'
import { SessionState } from '../../../src/client/session-state.js'
import { TEST_CONN } from '../../helpers/session.js'

function record(): { audit: AuditRecord; state: SessionState; stats: Stats; raw: string[]; lines: () => Array<Record<string, unknown>> } {
  const raw: string[] = []
  const state = new SessionState(9, TEST_CONN)
  state.clientId = 'dev-1'
  state.username = 'alice'
  state.version = 4
  const stats = new Stats()
  const audit = new AuditRecord(pino({ level: 'debug' }, { write: (l: string) => { raw.push(l) } }), state, stats)
  return { audit, state, stats, raw, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

/** The session's checks after one of them refused. */
function decidedBy(name: string): SessionChecks {
  const checks = new SessionChecks([])
  checks.decidedBy = name
  return checks
}

describe('AuditRecord', () => {
  it("a check's refusal names the check and the rule, and the client", () => {
    const { audit, state, lines } = record()
    state.lastRule = 'no-secret'
    audit.clientRefused('acl_denied', 0x87, PacketType.Publish, decidedBy('acl'))
    expect(lines()[0]).toMatchObject({ sid: 9, remote: '10.0.0.7:40000', audit: true, event: 'client_refused', reason: 'acl_denied', code: 0x87, packetType: 'publish', rule: 'no-secret', check: 'acl', clientId: 'dev-1', username: 'alice' })
  })

  it('a rule is spent by the refusal it decided: a later refusal by a check without rules does not repeat it', () => {
    const { audit, state, lines } = record()
    state.lastRule = 'no-secret'
    audit.rejected('acl_denied', 0x87, 'publish', 'secret/a', decidedBy('acl'))
    audit.rejected('rate_limited', 0x96, 'publish', 'x', decidedBy('rate'))
    const [first, second] = lines()
    expect(first).toMatchObject({ reason: 'acl_denied', rule: 'no-secret', check: 'acl' })
    expect(second).toMatchObject({ reason: 'rate_limited', check: 'rate' })
    expect(second).not.toHaveProperty('rule')
    expect(state.lastRule).toBe('')
  })

  it('a refusal only counted (not the first of its reason) spends its rule too', () => {
    const { audit, state, lines } = record()
    audit.rejected('acl_denied', 0x87, 'publish', 'a', decidedBy('acl'))
    state.lastRule = 'no-secret'
    audit.rejected('acl_denied', 0x87, 'publish', 'secret/b', decidedBy('acl'))
    audit.clientRefused('quota_exceeded', 0x97, PacketType.Subscribe, decidedBy('quota'))
    expect(lines()).toHaveLength(2)
    expect(lines()[1]).not.toHaveProperty('rule')
  })

  it("Moat's own refusal names no check and no rule, whatever an earlier verdict left behind", () => {
    const { audit, state, lines } = record()
    state.lastRule = 'no-secret'
    audit.clientRefused('malformed_packet', 0x81, PacketType.Pingreq, null)
    expect(lines()[0]).toMatchObject({ event: 'client_refused', reason: 'malformed_packet', clientId: 'dev-1' })
    expect(lines()[0]).not.toHaveProperty('rule')
    expect(lines()[0]).not.toHaveProperty('check')
    expect(state.lastRule).toBe('')
  })

  it('counts every rejected packet, logs the first of each reason, and sums them up in session_end', () => {
    const { audit, stats, lines } = record()
    for (let i = 0; i < 3; i++) audit.rejected('acl_denied', 0x87, 'publish', `t/${i}`, decidedBy('acl'))
    audit.rejected('quota_exceeded', 0x97, 'subscribe', 'f/#', null)
    audit.ended('client_closed', 10, 20, 30)
    expect(stats.rejectedFor('acl_denied')).toBe(3)
    expect(stats.rejectedFor('quota_exceeded')).toBe(1)
    expect(lines().map((l) => [l.event, l.topic])).toEqual([['packet_refused', 't/0'], ['packet_refused', 'f/#'], ['session_end', undefined]])
    expect(lines()[2]).toMatchObject({ event: 'session_end', clientId: 'dev-1', username: 'alice', version: 4, reason: 'client_closed', bytesIn: 10, bytesOut: 20, durationMs: 30, refusals: { acl_denied: 3, quota_exceeded: 1 } })
  })

  it('leaves out an empty client id and a missing user name rather than logging them empty', () => {
    const { audit, state, lines } = record()
    state.clientId = ''
    state.username = null
    audit.connectTimeout(5)
    audit.opened(0)
    for (const line of lines()) {
      expect(line).not.toHaveProperty('clientId')
      expect(line).not.toHaveProperty('username')
    }
    expect(lines()[0]).toMatchObject({ event: 'client_refused', reason: 'connect_timeout', buffered: 5 })
  })

  it('writes audit, event and reason first, as the fail2ban filter shipped in deploy/ reads them', () => {
    const { audit, raw } = record()
    audit.clientRefused('too_many_user_properties', 0x97, PacketType.Publish, null)
    audit.connectRefused('bad_credentials', 4, PacketType.Connect, decidedBy('auth'))
    // A fault an honest client can cause too: the filter must not count it.
    audit.clientRefused('malformed_packet', 0x81, PacketType.Publish, null)
    const filter = readFileSync(new URL('../../../deploy/fail2ban/filter.d/moat.conf', import.meta.url), 'utf8')
    const regexes = filter.split('\n').map((l) => l.replace(/^failregex = /, '').trim()).filter((l) => l.startsWith('"remote"'))
    expect(regexes).toHaveLength(2)
    const hosts = raw.map((line) => regexes.map((r) => new RegExp(r.replace('<ADDR>', '(?<host>[0-9a-fA-F:.]+?)')).exec(line)?.groups?.host).find((h) => h !== undefined))
    expect(hosts).toEqual(['10.0.0.7', '10.0.0.7', undefined])
  })

  it('session_open carries the identity and the transport', () => {
    const { audit, state, lines } = record()
    state.connected = true
    state.authenticatedBy = 'file'
    audit.opened(0)
    expect(lines()[0]).toMatchObject({ event: 'session_open', code: 0, clientId: 'dev-1', username: 'alice', authenticatedBy: 'file', version: 4, transport: 'tcp' })
  })

  it('session_open and session_end are the same lines, key for key, whether or not a child logger was made before them', () => {
    const keys = (line: Record<string, unknown>): string[] => Object.keys(line).filter((k) => k !== 'time')
    // Without an earlier line (the common case: written through the root logger, bindings first).
    const plain = record()
    plain.state.connected = true
    plain.audit.opened(0)
    plain.audit.ended('client_disconnect', 10, 4, 5)
    // After a refusal made the session's child logger, which then writes them.
    const refused = record()
    refused.state.connected = true
    refused.audit.rejected('acl_denied', 0x87, 'publish', 'a', decidedBy('acl'))
    refused.audit.opened(0)
    refused.audit.ended('client_disconnect', 10, 4, 5)
    const [open, end] = plain.lines()
    const [, openViaChild, endViaChild] = refused.lines()
    expect(keys(open!)).toEqual(['level', 'pid', 'hostname', 'sid', 'listener', 'remote', 'event', 'clientId', 'username', 'version', 'code', 'transport', 'msg'])
    expect(keys(openViaChild!)).toEqual(keys(open!))
    expect(keys(end!)).toEqual(['level', 'pid', 'hostname', 'sid', 'listener', 'remote', 'event', 'clientId', 'username', 'version', 'reason', 'bytesIn', 'bytesOut', 'durationMs', 'msg'])
    expect(keys(endViaChild!)).toEqual([...keys(end!).slice(0, -1), 'refusals', 'msg'])
    expect(end).toMatchObject({ sid: 9, listener: TEST_CONN.listener, remote: '10.0.0.7:40000', event: 'session_end', reason: 'client_disconnect', bytesIn: 10, bytesOut: 4, durationMs: 5 })
  })

  it('at warn, session_open and session_end are not built at all (no child logger is made for them)', () => {
    const raw: string[] = []
    const state = new SessionState(9, TEST_CONN)
    state.connected = true
    let children = 0
    const root = pino({ level: 'warn' }, { write: (l: string) => { raw.push(l) } })
    const child = root.child.bind(root)
    root.child = ((...args: Parameters<typeof root.child>) => { children++; return child(...args) }) as typeof root.child
    const audit = new AuditRecord(root, state, new Stats())
    audit.admitted()
    audit.opened(0)
    audit.ended('client_disconnect', 1, 1, 1)
    expect(raw).toEqual([])
    expect(children).toBe(0)
  })
})
