/** The sessions view's filters and keyset paging, and the merging of several nodes' pages (pure logic). */
import { describe, expect, it } from 'vitest'
import { cursorOf, merge, page, parseSessionQuery, QueryError, sessionParams } from '../../../src/admin/session-query.js'
import { kickedAnswer } from '../../../src/session/fault-answer.js'
import type { SessionRow } from '../../../src/session/session-row.js'
import { SessionState } from '../../../src/client/session-state.js'

function row(clientId: string, instance?: string, port = 1000): SessionRow {
  return {
    clientId, username: null, address: '127.0.0.1', port, listener: 'mqtt', transport: 'tcp', protocol: '3.1.1', state: 'open',
    connectedSince: new Date(0).toISOString(), keepalive: 60, tls: null, subscriptions: 0, bytesIn: 0, bytesOut: 0, ...(instance === undefined ? {} : { instance }),
  }
}

describe('session query', () => {
  it('refuses unknown or repeated parameters and bad values', () => {
    expect(() => sessionParams(new URLSearchParams('users=a'))).toThrow(QueryError)
    expect(() => sessionParams(new URLSearchParams('user=a&user=b'))).toThrow(/given twice/)
    expect(sessionParams(new URLSearchParams('scope=fleet&user=a'), ['scope'])).toEqual({ user: 'a' })
    for (const limit of ['0', '1001', '-1', '1.5', 'x']) expect(() => parseSessionQuery({ limit })).toThrow(/limit/)
    expect(() => parseSessionQuery({ address: '10.0.0.0/33' })).toThrow(/address/)
    expect(() => parseSessionQuery({ cursor: Buffer.from('[1,2]').toString('base64url') })).toThrow(/cursor/)
  })

  it('pages one node in client id order, the cursor picking up after the last row', () => {
    const rows = ['d', 'a', 'c', 'b', 'e'].map((id) => row(id))
    const first = page([...rows], parseSessionQuery({ limit: '2' }))
    expect(first.rows.map((r) => r.clientId)).toEqual(['a', 'b'])
    expect(first.more).toBe(true)
    const second = page([...rows], parseSessionQuery({ limit: '2', cursor: cursorOf(first.rows[1]!) }))
    expect(second.rows.map((r) => r.clientId)).toEqual(['c', 'd'])
    const last = page([...rows], parseSessionQuery({ limit: '2', cursor: cursorOf(second.rows[1]!) }))
    expect(last).toEqual({ rows: [rows[4]], more: false })
  })

  it('merges the pages of several instances into one order, with a cursor while any has more', () => {
    const q = parseSessionQuery({ limit: '2' })
    const onA = page([row('a', 'A'), row('c', 'A'), row('e', 'A')], q)
    const onB = page([row('b', 'B'), row('c', 'B')], q)
    const first = merge([onA, onB], 2)
    expect(first.rows.map((r) => [r.clientId, r.instance])).toEqual([['a', 'A'], ['b', 'B']])
    expect(first.next).not.toBeNull()
    // The same client id on two instances (a takeover in flight): both listed, A before B.
    const q2 = parseSessionQuery({ limit: '2', cursor: first.next! })
    const second = merge([page([row('a', 'A'), row('c', 'A'), row('e', 'A')], q2), page([row('b', 'B'), row('c', 'B')], q2)], 2)
    expect(second.rows.map((r) => [r.clientId, r.instance])).toEqual([['c', 'A'], ['c', 'B']])
    const q3 = parseSessionQuery({ limit: '2', cursor: second.next! })
    const third = merge([page([row('a', 'A'), row('c', 'A'), row('e', 'A')], q3), page([row('b', 'B'), row('c', 'B')], q3)], 2)
    expect(third).toEqual({ rows: [row('e', 'A')], next: null })
  })

  it('answers a kick with DISCONNECT 0x98 on 5.0, a close on 3.1.1, and before the CONNACK a refusing CONNACK', () => {
    const conn = { listener: 'mqtt', remoteAddress: '127.0.0.1', remotePort: 1, transport: 'tcp' as const, tlsVersion: null, certificate: null }
    const v5 = new SessionState(1, conn)
    v5.version = 5
    v5.connected = true
    expect([...kickedAnswer(v5, true)!]).toEqual([0xe0, 0x01, 0x98])
    const v4 = new SessionState(2, conn)
    v4.version = 4
    v4.connected = true
    expect(kickedAnswer(v4, true)).toBeNull()
    // Before the CONNACK: Server unavailable (3.1.1 code 3; 5.0 0x88), the client may try again.
    expect([...kickedAnswer(v4, false)!]).toEqual([0x20, 0x02, 0x00, 0x03])
    v5.connected = false
    expect(kickedAnswer(v5, false)![3]).toBe(0x88)
  })
})
