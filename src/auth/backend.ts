/**
 * The auth backend interface: one method, kept minimal. Caching, metrics, timeouts and
 * fail-closed are added around it (auth/cached.ts, auth/instrumented.ts, checks/auth.ts), never
 * inside a backend.
 *
 * A backend answers allow (with the identity it vouches for), deny, or none (no opinion: the next
 * backend is asked). A backend that cannot answer (service down, timeout, bad response) REJECTS;
 * the auth check turns that into a denial (fail closed), counted and logged.
 */
import type { ClientCertificate, Transport } from '../client/conn-info.js'
import type { BackendErrorKind, BackendType } from '../stats/auth-stats.js'

export type { BackendErrorKind, BackendType }

/** What a backend may know about a CONNECT. */
export interface AuthRequest {
  readonly username: string | null
  /** The CONNECT password: a secret. Never log it, never keep it after the call. */
  readonly password: Buffer | null
  readonly clientId: string
  readonly remoteAddress: string
  readonly listener: string
  readonly transport: Transport
  readonly protocolVersion: number
  readonly certificate: ClientCertificate | null
}

export type AuthOutcome = 'allow' | 'deny' | 'none'

export interface AuthResult {
  readonly outcome: AuthOutcome
  /** On allow: the identity the backend vouches for (default: the CONNECT user name). */
  readonly username?: string | null
  /** On allow: attributes for ACLs and logs (JWT claims, HTTP `attributes`). */
  readonly claims?: Readonly<Record<string, string>> | null
  readonly groups?: readonly string[]
  /** On allow: when the credentials stop being valid (ms since the epoch; a token's exp): caps caching. */
  readonly validUntil?: number
}

export const ALLOW: AuthResult = Object.freeze({ outcome: 'allow' })
export const DENY: AuthResult = Object.freeze({ outcome: 'deny' })
export const NO_OPINION: AuthResult = Object.freeze({ outcome: 'none' })

export interface AuthBackend {
  readonly type: BackendType
  authenticate(req: AuthRequest, signal: AbortSignal): Promise<AuthResult>
  /**
   * The request fields this backend's answer depends on, as one string (the cache key is an HMAC
   * of it). Defaults to every field.
   */
  cacheKey?(req: AuthRequest): string
  /**
   * An answer this backend has at once, without waiting (a fresh cached one), or undefined: ask
   * `authenticate`. Lets a CONNECT whose answers are all cached be decided synchronously, with no
   * timer, abort signal or promise (CONNECT cost).
   */
  answerNow?(req: AuthRequest): AuthResult | undefined
  close?(): Promise<void>
}

/** A backend that could not answer. The message is for operators; it never contains a secret. */
export class BackendError extends Error {
  readonly kind: BackendErrorKind
  constructor(kind: BackendErrorKind, message: string) {
    super(message)
    this.name = 'BackendError'
    this.kind = kind
  }
}

export function errorKind(err: unknown): BackendErrorKind {
  if (err instanceof BackendError) return err.kind
  const name = (err as { name?: string } | null)?.name
  if (name === 'AbortError' || name === 'TimeoutError') return 'timeout'
  return 'internal'
}

/** Every request field, for backends whose answer may depend on any of them. */
export function fullCacheKey(req: AuthRequest): string {
  return JSON.stringify([
    req.username, req.password?.toString('base64') ?? null, req.clientId, req.remoteAddress,
    req.listener, req.protocolVersion, req.certificate?.fingerprint256 ?? null,
  ])
}
