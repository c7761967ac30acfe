/**
 * Authentication: the second check of every chain (after protocol). Per CONNECT:
 *
 * 1. Lockout: a banned address or user name is refused at once, without asking any backend,
 *    answered like a bad password (or 0x8A Banned, if configured).
 * 2. Backends in the configured order: the first that answers allow or deny decides; one with no
 *    opinion passes on. Answers held in a backend's cache decide synchronously (answerNow); the
 *    first backend without one is asked, asynchronously, and those after it. A backend that fails
 *    (down, slow, bad answer), or the whole run taking longer than `auth.timeout`, denies (fail
 *    closed; counted and logged by auth/instrumented.ts).
 * 3. Nobody had an opinion: a client that presented no credentials is admitted as anonymous when
 *    `auth.anonymous` is true; otherwise refused (not authorized). One that sent credentials is
 *    refused as bad credentials, or, with `auth.unknownCredentials: broker`, admitted under the
 *    user name it presented and forwarded unchanged: the broker's CONNACK decides.
 * 4. Admitted: client-id rules (pattern, length, binding to the user name: auth/client-id-binding.ts), then the takeover rule
 *    (auth/client-ids.ts). The identity goes into SessionState for ACLs and logs.
 *
 * Answers (the session maps them to the client's version): bad credentials 0x86 / 3.1.1 code 4
 * (0x87 / 5 with `auth.badCredentialsReply: not-authorized`); not authorized and backend failure
 * 0x87 / 5; client id refused or taken 0x85 / 2; banned like bad credentials (or 0x8A / 5). Which
 * part of the credentials was wrong is never said; a failed login counts towards the lockout
 * whatever the reason.
 */
import type { IConnectPacket } from 'mqtt-packet'
import { type AuthBackend, type AuthRequest, type AuthResult } from '../auth/backend.js'
import { clientIdBound } from '../auth/client-id-binding.js'
import { compileAuthPolicy, type AuthPolicy } from '../auth/policy.js'
import type { AuthDecision } from '../stats/auth-stats.js'
import { DENY_ALL_AUTH } from '../config/auth-schema.js'
import { ReasonCode } from '../protocol/reason.js'
import type { SessionState } from '../client/session-state.js'
import type { Check, CheckFactory } from './check.js'
import { disconnect, FORWARD, type Verdict } from './verdict.js'

export const BAD_CREDENTIALS = disconnect(ReasonCode.BadUserNameOrPassword, 'bad_credentials')
export const NOT_AUTHORIZED = disconnect(ReasonCode.NotAuthorized, 'not_authorized')
export const BACKEND_FAILED = disconnect(ReasonCode.NotAuthorized, 'auth_backend_failed')
export const BANNED_AS_BAD_CREDENTIALS = disconnect(ReasonCode.BadUserNameOrPassword, 'banned')
/** `auth.badCredentialsReply: not-authorized`: wrong credentials answered as Mosquitto 2.0 answers them. */
export const BAD_CREDENTIALS_AS_NOT_AUTHORIZED = disconnect(ReasonCode.NotAuthorized, 'bad_credentials')
export const BANNED_AS_NOT_AUTHORIZED = disconnect(ReasonCode.NotAuthorized, 'banned')
export const BANNED = disconnect(ReasonCode.Banned, 'banned')
export const CLIENT_ID_REFUSED = disconnect(ReasonCode.ClientIdentifierNotValid, 'client_id_refused')
export const CLIENT_ID_TAKEN = disconnect(ReasonCode.ClientIdentifierNotValid, 'client_id_taken')
/** After a reload: the new policy no longer admits this open session's identity. */
export const ACCESS_REVOKED = disconnect(ReasonCode.NotAuthorized, 'access_revoked')

const EMPTY_GROUPS: readonly string[] = Object.freeze([])

class AuthTimeout extends Error {
  constructor() {
    super('auth timeout')
    this.name = 'TimeoutError'
  }
}

function onAbortTimer(controller: AbortController): void {
  controller.abort(new AuthTimeout())
}

/** Resolves like `p`, or rejects once `signal` aborts (a backend that ignores its signal still ends). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then((v) => {
      signal.removeEventListener('abort', onAbort)
      resolve(v)
    }, (err: unknown) => {
      signal.removeEventListener('abort', onAbort)
      reject(err as Error)
    })
  })
}

export class AuthCheck implements Check {
  readonly name = 'auth'
  private readonly policy: AuthPolicy
  /** The answer to wrong credentials, and to a ban that answers like them (`auth.badCredentialsReply`). */
  private readonly badCredentials: Verdict
  private readonly banned: Verdict
  private controller: AbortController | null = null
  private closed = false

  constructor(policy: AuthPolicy) {
    this.policy = policy
    const notAuthorized = policy.badCredentialsReply === 'not-authorized'
    this.badCredentials = notAuthorized ? BAD_CREDENTIALS_AS_NOT_AUTHORIZED : BAD_CREDENTIALS
    this.banned = policy.banReply === 'banned' ? BANNED : notAuthorized ? BANNED_AS_NOT_AUTHORIZED : BANNED_AS_BAD_CREDENTIALS
  }

  onConnect(connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict> {
    const p = this.policy
    const username = connect.username ?? null
    if (p.lockout !== null && p.lockout.isBanned(s.remoteAddress, username)) {
      return this.refuse('banned', this.banned)
    }
    if (p.backends.length === 0) return this.nobodyKnows(connect, s)
    const req: AuthRequest = {
      username,
      password: connect.password ?? null,
      clientId: connect.clientId,
      remoteAddress: s.remoteAddress,
      listener: s.listener,
      transport: s.transport,
      protocolVersion: s.version,
      certificate: s.certificate,
    }
    // Answers a backend has at once (its cache) decide without a timer or a promise: the usual
    // CONNECT of a fleet that reconnects. The first backend without one is asked, and those after it.
    const backends = p.backends
    for (let i = 0; i < backends.length; i++) {
      const backend = backends[i]!
      const result = backend.answerNow?.(req)
      if (result === undefined) return this.ask(connect, s, req, i)
      const verdict = this.answered(backend, result, connect, s, req)
      if (verdict !== null) return verdict
    }
    return this.nobodyKnows(connect, s)
  }

  /** Asks the backends from `first` on, in order, within `auth.timeout`. */
  private async ask(connect: IConnectPacket, s: SessionState, req: AuthRequest, first: number): Promise<Verdict> {
    const p = this.policy
    const controller = new AbortController()
    this.controller = controller
    const timer = setTimeout(onAbortTimer, p.timeoutMs, controller)
    try {
      for (let i = first; i < p.backends.length; i++) {
        const backend = p.backends[i]!
        let result: AuthResult
        try {
          result = await untilAborted(backend.authenticate(req, controller.signal), controller.signal)
        } catch (err) {
          // The session closed while waiting: nobody hears the answer; count nothing.
          if (this.closed) return BACKEND_FAILED
          this.failed(backend, err)
          return this.refuse('backend_failed', BACKEND_FAILED)
        }
        const verdict = this.answered(backend, result, connect, s, req)
        if (verdict !== null) return verdict
      }
      return this.nobodyKnows(connect, s)
    } finally {
      clearTimeout(timer)
      this.controller = null
    }
  }

  /** What one backend's answer decides: admitted or refused, or null (no opinion: the next backend). */
  private answered(backend: AuthBackend, result: AuthResult, connect: IConnectPacket, s: SessionState, req: AuthRequest): Verdict | null {
    const p = this.policy
    const stats = p.runtime.stats
    if (result.outcome === 'none') {
      stats.attempt(backend.type, 'no_opinion')
      return null
    }
    if (result.outcome === 'deny') {
      stats.attempt(backend.type, 'deny')
      p.lockout?.fail(s.remoteAddress, req.username)
      return this.refuse('bad_credentials', this.badCredentials)
    }
    stats.attempt(backend.type, 'allow')
    return this.admit(s, backend.type, result.username !== undefined ? result.username : req.username, result.claims ?? null, result.groups ?? EMPTY_GROUPS, connect.clientId)
  }

  private failed(backend: AuthBackend, err: unknown): void {
    const stats = this.policy.runtime.stats
    stats.attempt(backend.type, 'error')
    // A timeout of the whole run is not seen by the instrumented decorator: count it here.
    if (err instanceof AuthTimeout) {
      stats.error(backend.type, 'timeout')
      this.policy.runtime.backendLog.warn(`${backend.type}:timeout`, { event: 'auth_backend_error', backend: backend.type, kind: 'timeout' }, 'auth backends did not answer within auth.timeout: denying clients (fail closed)')
    }
  }

  /** No backend accepted or denied the client. */
  private nobodyKnows(connect: IConnectPacket, s: SessionState): Verdict {
    const p = this.policy
    const presented = connect.username !== undefined || connect.password !== undefined
    if (!presented && p.anonymous) return this.admit(s, 'anonymous', null, null, EMPTY_GROUPS, connect.clientId)
    if (!presented) return this.refuse('not_authorized', NOT_AUTHORIZED)
    // The broker verifies these itself: the name stands unverified until its CONNACK 0.
    if (p.unknownCredentials === 'broker') return this.admit(s, 'broker', connect.username ?? null, null, EMPTY_GROUPS, connect.clientId)
    p.lockout?.fail(s.remoteAddress, connect.username ?? null)
    return this.refuse('bad_credentials', this.badCredentials)
  }

  private admit(
    s: SessionState, by: string, username: string | null,
    claims: Readonly<Record<string, string>> | null, groups: readonly string[], clientId: string,
  ): Verdict {
    const rules = this.policy.clientId
    if (clientId.length > rules.maxLength || (rules.pattern !== null && !rules.pattern.test(clientId))) {
      return this.refuse('client_id_refused', CLIENT_ID_REFUSED)
    }
    if (!clientIdBound(rules.bind, rules.separator, username, clientId)) return this.refuse('client_id_refused', CLIENT_ID_REFUSED)
    s.username = username
    s.claims = claims
    s.groups = groups
    s.authenticatedBy = by
    if (rules.takeover === 'same-identity' && !this.policy.runtime.clientIds.claim(s)) {
      return this.refuse('client_id_taken', CLIENT_ID_TAKEN)
    }
    this.policy.runtime.stats.decision(by === 'anonymous' ? 'anonymous' : by === 'broker' ? 'passed_to_broker' : 'allowed')
    return FORWARD
  }

  private refuse(decision: AuthDecision, verdict: Verdict): Verdict {
    this.policy.runtime.stats.decision(decision)
    return verdict
  }

  /**
   * After a reload, for an open session: would the new policy still admit this identity? What can
   * be judged without the password (which Moat does not keep): anonymous access turned off, the
   * admitting backend type removed, the user removed from the password files, passing unknown
   * credentials to the broker turned off, the client id no longer allowed by the client-id rules.
   * (An http, jwt or broker identity is not asked again: its answer needs the credentials.)
   */
  reviewConnection(s: SessionState): Verdict {
    const p = this.policy
    const by = s.authenticatedBy
    if (by === null) return FORWARD
    if (by === 'anonymous') return p.anonymous ? FORWARD : ACCESS_REVOKED
    if (by === 'broker') {
      if (p.unknownCredentials !== 'broker') return ACCESS_REVOKED
    } else if (!p.backendTypes.has(by)) return ACCESS_REVOKED
    if (by === 'file' && (s.username === null || !p.fileUsers.some((f) => f.has(s.username!)))) return ACCESS_REVOKED
    const rules = p.clientId
    const id = s.clientId
    if (id.length > rules.maxLength || (rules.pattern !== null && !rules.pattern.test(id))) return ACCESS_REVOKED
    if (!clientIdBound(rules.bind, rules.separator, s.username, id)) return ACCESS_REVOKED
    return FORWARD
  }

  onClose(): void {
    // The client left (or the session closed) while a backend was still thinking: stop waiting.
    if (this.controller !== null) {
      this.closed = true
      this.controller.abort()
    }
  }
}

export const authCheck: CheckFactory = {
  name: 'auth',
  create(config, env) {
    const policy = compileAuthPolicy(config.auth ?? DENY_ALL_AUTH, config.file ?? '', env.auth)
    return () => new AuthCheck(policy)
  },
}
