import type { IConnectPacket } from 'mqtt-packet'
import { pino } from 'pino'
import { FileBackend } from '../../../src/auth/file.js'
import { describe, expect, it } from 'vitest'
import { ALLOW, BackendError, DENY, NO_OPINION, type AuthBackend, type AuthResult, type BackendType } from '../../../src/auth/backend.js'
import type { AuthPolicy } from '../../../src/auth/policy.js'
import { AuthRuntime } from '../../../src/auth/runtime.js'
import { AuthStats } from '../../../src/auth/stats.js'
import { AuthCheck, ACCESS_REVOKED } from '../../../src/checks/auth.js'
import { Action, FORWARD, type Verdict } from '../../../src/checks/verdict.js'
import { plainConnInfo } from '../../../src/session/conn-info.js'
import { SessionState } from '../../../src/session/state.js'

/** A backend with a fixed answer that records whether it was asked. */
function backend(type: BackendType, answer: AuthResult | Error): AuthBackend & { asked: number } {
  const b = {
    type,
    asked: 0,
    authenticate(): Promise<AuthResult> {
      b.asked++
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer)
    },
  }
  return b
}

function policy(backends: AuthBackend[], over: Partial<AuthPolicy> = {}): AuthPolicy {
  return {
    anonymous: false, backends, timeoutMs: 1000,
    clientId: { pattern: null, maxLength: 256, bind: 'none', separator: ':', takeover: 'same-identity' },
    lockout: null, banReply: 'bad-credentials', runtime: new AuthRuntime(new AuthStats(), pino({ level: 'silent' })),
    backendTypes: new Set(backends.map((b) => b.type)), fileUsers: [],
    ...over,
  }
}

async function run(p: AuthPolicy, connect: Partial<IConnectPacket> = { username: 'u', password: Buffer.from('p') }): Promise<Verdict> {
  const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
  s.version = 4
  s.clientId = 'c'
  return await new AuthCheck(p).onConnect({ cmd: 'connect', clientId: 'c', protocolVersion: 4, ...connect } as IConnectPacket, s)
}

describe('AuthCheck: backends in order', () => {
  it('a backend with no opinion passes on; the first that allows decides', async () => {
    const a = backend('file', NO_OPINION)
    const b = backend('http', ALLOW)
    const c = backend('jwt', DENY)
    expect((await run(policy([a, b, c]))).action).toBe(Action.Forward)
    expect([a.asked, b.asked, c.asked]).toEqual([1, 1, 0])
  })

  it('the first deny decides: later backends are not asked', async () => {
    const a = backend('file', DENY)
    const b = backend('http', ALLOW)
    expect(await run(policy([a, b]))).toMatchObject({ reason: 0x86, why: 'bad_credentials' })
    expect(b.asked).toBe(0)
  })

  it('a failing backend denies (fail closed) even when a later one would allow', async () => {
    const a = backend('http', new BackendError('unavailable', 'down'))
    const b = backend('file', ALLOW)
    expect(await run(policy([a, b]))).toMatchObject({ reason: 0x87, why: 'auth_backend_failed' })
    expect(b.asked).toBe(0)
  })

  it('nobody knows the client: credentials → bad credentials; none → not authorized, or anonymous when allowed', async () => {
    const none = backend('file', NO_OPINION)
    expect(await run(policy([none]))).toMatchObject({ reason: 0x86 })
    expect(await run(policy([none]), {})).toMatchObject({ reason: 0x87, why: 'not_authorized' })
    expect((await run(policy([none], { anonymous: true }), {})).action).toBe(Action.Forward)
    // anonymous admits only clients without credentials: a user name nobody vouched for is refused
    expect(await run(policy([none], { anonymous: true }))).toMatchObject({ reason: 0x86 })
  })

  it('answers a backend has at once decide synchronously; the first without one is asked, then those after it', async () => {
    const now = (answer: AuthResult | undefined, type: BackendType): AuthBackend & { asked: number; peeked: number } => {
      const b = Object.assign(backend(type, ALLOW), { peeked: 0, answerNow: () => { b.peeked++; return answer } })
      return b
    }
    const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
    s.version = 4
    s.clientId = 'c'
    const connect = { cmd: 'connect', clientId: 'c', protocolVersion: 4, username: 'u', password: Buffer.from('p') } as IConnectPacket
    // Cached: no opinion from the first, allow from the second: a Verdict, not a promise.
    const [a, b] = [now(NO_OPINION, 'file'), now(ALLOW, 'http')]
    const p1 = policy([a, b])
    const sync = new AuthCheck(p1).onConnect(connect, s)
    expect(sync).not.toBeInstanceOf(Promise)
    expect((sync as Verdict).action).toBe(Action.Forward)
    expect([a.peeked, a.asked, b.peeked, b.asked]).toEqual([1, 0, 1, 0])
    expect(s.authenticatedBy).toBe('http')
    // A cached deny decides at once too, and counts towards the lockout like any deny.
    const denied = new AuthCheck(policy([now(DENY, 'file'), now(ALLOW, 'http')])).onConnect(connect, s)
    expect(denied).toMatchObject({ reason: 0x86, why: 'bad_credentials' })
    // The second has nothing cached: asked (a promise), the first not asked again.
    const [c, d] = [now(NO_OPINION, 'file'), now(undefined, 'http')]
    const pending = new AuthCheck(policy([c, d])).onConnect(connect, s)
    expect(pending).toBeInstanceOf(Promise)
    expect((await pending).action).toBe(Action.Forward)
    expect([c.peeked, c.asked, d.peeked, d.asked]).toEqual([1, 0, 1, 1])
  })

  it('with no backends and anonymous off, every client is refused', async () => {
    expect(await run(policy([]))).toMatchObject({ reason: 0x86 })
    expect(await run(policy([]), {})).toMatchObject({ reason: 0x87 })
  })
})

describe('AuthCheck after a reload (reviewConnection)', () => {
  function admitted(by: string, username: string | null, clientId = 'dev-1'): SessionState {
    const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
    s.version = 5
    s.clientId = clientId
    s.username = username
    s.authenticatedBy = by
    return s
  }
  const file = (users: string[]): FileBackend => new FileBackend(new Map(users.map((u) => [u, { kind: 'scrypt', N: 2, r: 1, p: 1, salt: Buffer.alloc(1), hash: Buffer.alloc(1) } as never])))

  it('keeps an identity the new policy still admits', () => {
    const p = policy([backend('file', ALLOW)], { fileUsers: [file(['alice'])] })
    expect(new AuthCheck(p).reviewConnection(admitted('file', 'alice'))).toBe(FORWARD)
  })

  it('revokes a user removed from the password file, a backend type no longer configured, anonymous access turned off, a client id no longer allowed', () => {
    const withFile = policy([backend('file', ALLOW)], { fileUsers: [file(['bob'])] })
    expect(new AuthCheck(withFile).reviewConnection(admitted('file', 'alice'))).toBe(ACCESS_REVOKED)
    expect(new AuthCheck(withFile).reviewConnection(admitted('http', 'alice'))).toBe(ACCESS_REVOKED)
    expect(new AuthCheck(policy([], { anonymous: false })).reviewConnection(admitted('anonymous', null))).toBe(ACCESS_REVOKED)
    expect(new AuthCheck(policy([], { anonymous: true })).reviewConnection(admitted('anonymous', null))).toBe(FORWARD)
    const bound = policy([backend('file', ALLOW)], { fileUsers: [file(['alice'])], clientId: { pattern: null, maxLength: 256, bind: 'username-prefix', separator: '-', takeover: 'same-identity' } })
    expect(new AuthCheck(bound).reviewConnection(admitted('file', 'alice', 'bob-1'))).toBe(ACCESS_REVOKED)
    expect(new AuthCheck(bound).reviewConnection(admitted('file', 'alice', 'alice-1'))).toBe(FORWARD)
    expect(new AuthCheck(bound).reviewConnection(admitted('file', 'alice', 'alice1'))).toBe(ACCESS_REVOKED) // a prefix is not an identity
    expect(ACCESS_REVOKED).toMatchObject({ reason: 0x87, why: 'access_revoked' })
  })
})
