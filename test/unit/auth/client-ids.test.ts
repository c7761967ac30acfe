import { describe, expect, it } from 'vitest'
import { ClientIdRegistry } from '../../../src/auth/client-ids.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'

let n = 0
function session(clientId: string, username: string | null): SessionState {
  const s = new SessionState(++n, plainConnInfo('mqtt', '127.0.0.1', 1))
  s.clientId = clientId
  s.username = username
  return s
}

describe('ClientIdRegistry', () => {
  it('refuses another identity while a holder lives, admits it once the holder is gone', () => {
    const r = new ClientIdRegistry()
    const alice = session('dev', 'alice')
    expect(r.claim(alice)).toBe(true)
    expect(r.claim(session('dev', 'bob'))).toBe(false)
    expect(r.claim(session('dev', null))).toBe(false)
    r.release(alice)
    expect(r.claim(session('dev', 'bob'))).toBe(true)
  })

  it('keeps the older holder registered when a same-identity newcomer is released first (refused by a later check)', () => {
    const r = new ClientIdRegistry()
    const first = session('dev', 'alice')
    const second = session('dev', 'alice')
    expect(r.claim(first)).toBe(true)
    expect(r.claim(second)).toBe(true)
    r.release(second)
    expect(r.claim(session('dev', 'mallory'))).toBe(false)
    r.release(first)
    expect(r.size).toBe(0)
  })

  it('never holds an empty client id (the broker assigns one)', () => {
    const r = new ClientIdRegistry()
    expect(r.claim(session('', 'alice'))).toBe(true)
    expect(r.claim(session('', 'bob'))).toBe(true)
    expect(r.size).toBe(0)
  })
})
