import type { IConnectPacket } from 'mqtt-packet'
import { pino } from 'pino'
import { FileBackend } from '../../../src/auth/file.js'
import { describe, expect, it } from 'vitest'
import { ALLOW, BackendError, DENY, NO_OPINION, type AuthBackend, type AuthResult, type BackendType } from '../../../src/auth/backend.js'
import type { AuthPolicy } from '../../../src/auth/policy.js'
import { AuthRuntime } from '../../../src/auth/runtime.js'
import { AuthStats } from '../../../src/stats/auth-stats.js'
import { Lockout, LockoutTable } from '../../../src/auth/lockout.js'
import { AuthCheck, ACCESS_REVOKED } from '../../../src/checks/auth.js'
import { Action, FORWARD, type Verdict } from '../../../src/checks/verdict.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'

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
    lockout: null, banReply: 'bad-credentials', unknownCredentials: 'refuse', badCredentialsReply: 'bad-credentials', runtime: new AuthRuntime(new AuthStats(), pino({ level: 'silent' })),
    backendTypes: new Set(backends.map((b) => b.type)), fileUsers: [],
    ...over,
  }
}

async function run(p: AuthPolicy, connect: Partial<IConnectPacket> = { username: 'u', password: Buffer.from('p') }, s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))): Promise<Verdict> {
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

describe('AuthCheck: unknownCredentials: broker', () => {
  const broker = (backends: AuthBackend[], over: Partial<AuthPolicy> = {}): AuthPolicy => policy(backends, { unknownCredentials: 'broker', ...over })

  it('credentials no backend knows are forwarded under the presented user name; the broker decides', async () => {
    for (const backends of [[], [backend('file', NO_OPINION), backend('http', NO_OPINION)]]) {
      const p = broker(backends)
      const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
      expect(await run(p, { username: 'alice', password: Buffer.from('whatever') }, s)).toBe(FORWARD)
      expect(s).toMatchObject({ username: 'alice', authenticatedBy: 'broker', claims: null, groups: [] })
      expect(p.runtime.stats.decided('passed_to_broker')).toBe(1)
      expect(p.runtime.stats.decided('allowed')).toBe(0)
    }
    // A password alone is credentials too (5.0 allows it): the broker judges it.
    expect(await run(broker([]), { password: Buffer.from('token') })).toBe(FORWARD)
  })

  it('a backend that denies still refuses at Moat, and counts towards the lockout; one that allows still decides', async () => {
    const lockout = new Lockout({ maxFailures: 1, windowMs: 60_000, banMs: 60_000, per: ['username'], maxEntries: 10, reply: 'bad-credentials' }, new LockoutTable(10), new AuthStats())
    const p = broker([backend('file', DENY)], { lockout })
    expect(await run(p, { username: 'alice', password: Buffer.from('wrong') })).toMatchObject({ reason: 0x86, why: 'bad_credentials' })
    expect(lockout.isBanned('127.0.0.1', 'alice')).toBe(true)
    const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
    expect(await run(broker([backend('file', ALLOW)]), { username: 'bob', password: Buffer.from('right') }, s)).toBe(FORWARD)
    expect(s.authenticatedBy).toBe('file')
  })

  it('does not count towards the lockout what it passes on (the broker judges the password)', async () => {
    const lockout = new Lockout({ maxFailures: 1, windowMs: 60_000, banMs: 60_000, per: ['address', 'username'], maxEntries: 10, reply: 'bad-credentials' }, new LockoutTable(10), new AuthStats())
    expect(await run(broker([], { lockout }))).toBe(FORWARD)
    expect(lockout.isBanned('127.0.0.1', 'u')).toBe(false)
  })

  it('no credentials: still anonymous (when allowed) or refused by Moat, not passed on', async () => {
    expect(await run(broker([]), {})).toMatchObject({ reason: 0x87, why: 'not_authorized' })
    const s = new SessionState(1, plainConnInfo('mqtt', '127.0.0.1', 1))
    expect(await run(broker([], { anonymous: true }), {}, s)).toBe(FORWARD)
    expect(s.authenticatedBy).toBe('anonymous')
  })

  it('the client-id rules still apply to the presented user name', async () => {
    const bound = broker([], { clientId: { pattern: null, maxLength: 256, bind: 'username', separator: ':', takeover: 'same-identity' } })
    expect(await run(bound, { username: 'other', password: Buffer.from('p') })).toMatchObject({ reason: 0x85, why: 'client_id_refused' })
    expect(await run(bound, { username: 'c', password: Buffer.from('p') })).toBe(FORWARD)
  })
})

describe('AuthCheck: badCredentialsReply', () => {
  const lockout = (reply: 'bad-credentials' | 'banned'): Lockout => {
    const l = new Lockout({ maxFailures: 1, windowMs: 60_000, banMs: 60_000, per: ['username'], maxEntries: 10, reply }, new LockoutTable(10), new AuthStats())
    l.fail('127.0.0.1', 'banned-user')
    return l
  }

  it('not-authorized answers every bad_credentials refusal with 0x87 (3.1.1: 5), the reason label unchanged', async () => {
    const p = (backends: AuthBackend[]): AuthPolicy => policy(backends, { badCredentialsReply: 'not-authorized' })
    expect(await run(p([backend('file', DENY)]))).toMatchObject({ reason: 0x87, why: 'bad_credentials' })
    expect(await run(p([backend('file', NO_OPINION)]))).toMatchObject({ reason: 0x87, why: 'bad_credentials' })
    expect(await run(p([]))).toMatchObject({ reason: 0x87, why: 'bad_credentials' })
    // The default keeps 0x86.
    expect(await run(policy([backend('file', DENY)]))).toMatchObject({ reason: 0x86, why: 'bad_credentials' })
  })

  it('a lockout ban answered like bad credentials follows it; reply: banned keeps 0x8A', async () => {
    const who = { username: 'banned-user', password: Buffer.from('p') }
    expect(await run(policy([], { lockout: lockout('bad-credentials'), badCredentialsReply: 'not-authorized' }), who)).toMatchObject({ reason: 0x87, why: 'banned' })
    expect(await run(policy([], { lockout: lockout('bad-credentials') }), who)).toMatchObject({ reason: 0x86, why: 'banned' })
    expect(await run(policy([], { lockout: lockout('banned'), banReply: 'banned', badCredentialsReply: 'not-authorized' }), who)).toMatchObject({ reason: 0x8a, why: 'banned' })
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

  it('keeps a session the broker authenticated while unknownCredentials stays broker; revokes it once it is refuse', () => {
    expect(new AuthCheck(policy([], { unknownCredentials: 'broker' })).reviewConnection(admitted('broker', 'alice'))).toBe(FORWARD)
    expect(new AuthCheck(policy([backend('file', ALLOW)], { unknownCredentials: 'broker' })).reviewConnection(admitted('broker', 'alice'))).toBe(FORWARD)
    expect(new AuthCheck(policy([])).reviewConnection(admitted('broker', 'alice'))).toBe(ACCESS_REVOKED)
    const bound = policy([], { unknownCredentials: 'broker', clientId: { pattern: null, maxLength: 256, bind: 'username', separator: ':', takeover: 'same-identity' } })
    expect(new AuthCheck(bound).reviewConnection(admitted('broker', 'alice', 'bob'))).toBe(ACCESS_REVOKED)
  })
})
