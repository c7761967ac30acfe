/**
 * The `jwt` backend: the CONNECT password carries a JWT (compact JWS), verified with `jose` against
 * a shared secret (HS*), a public key (PEM), or a JWKS URL (fetched, cached for jwksCacheMaxAge,
 * refetched on an unknown `kid` at most once per 30 s). `exp` is required; `exp`, `nbf`, `aud`
 * and `iss` are checked; only the configured algorithms are accepted (no `none`, no HS/RS confusion).
 *
 * A password that is not shaped like a JWT: no opinion (a file backend after this one may know the
 * user). A token that fails verification: deny. A JWKS that cannot be fetched: the backend fails
 * (fail closed, counted).
 *
 * Identity: `usernameClaim` (default `sub`) becomes the user name; the claims listed in `claims`
 * become string attributes (numbers and booleans as text, lists joined by commas) for ACLs and
 * logs; `groupsClaim` (a list of strings) becomes the groups.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import type { JwtBackendConfig } from '../config/types.js'
import { BackendError, DENY, NO_OPINION, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const MAX_TOKEN = 16 * 1024
const MAX_CLAIM = 1024

export class JwtBackend implements AuthBackend {
  readonly type = 'jwt'
  private readonly config: JwtBackendConfig
  private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey

  constructor(config: JwtBackendConfig) {
    this.config = config
    if (config.secret !== null) this.key = new TextEncoder().encode(config.secret)
    else if (config.publicKey !== null) this.key = createPublicKey(config.publicKey)
    else {
      this.key = createRemoteJWKSet(new URL(config.jwksUrl!), {
        cacheMaxAge: config.jwksCacheMaxAgeMs,
        timeoutDuration: config.jwksTimeoutMs,
        cooldownDuration: 30_000,
      })
    }
  }

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    const password = req.password
    if (password === null || password.length > MAX_TOKEN) return NO_OPINION
    const token = password.toString('latin1')
    if (!COMPACT_JWS.test(token)) return NO_OPINION
    const c = this.config
    let payload: JWTPayload
    try {
      const options = {
        algorithms: [...c.algorithms],
        audience: c.audience === null ? undefined : [...c.audience],
        issuer: c.issuer === null ? undefined : [...c.issuer],
        clockTolerance: c.clockToleranceMs / 1000,
        requiredClaims: ['exp'],
      }
      // Three call forms, one per key type (jose's overloads keep them apart).
      const result = typeof this.key === 'function'
        ? await jwtVerify(token, this.key, options)
        : await jwtVerify(token, this.key, options)
      payload = result.payload
    } catch (err) {
      if (typeof this.key === 'function' && isUnavailable(err)) throw new BackendError(err instanceof errors.JWKSTimeout ? 'timeout' : 'unavailable', `JWKS: ${(err as Error).message}`)
      return DENY
    }
    const username = payload[c.usernameClaim]
    if (typeof username !== 'string' || username === '' || username.length > MAX_CLAIM) return DENY
    let claims: Record<string, string> | null = null
    if (c.claims.length > 0) {
      claims = {}
      for (const name of c.claims) {
        const value = claimText(payload[name])
        if (value !== null) claims[name] = value
      }
      Object.freeze(claims)
    }
    let groups: readonly string[] = []
    if (c.groupsClaim !== null) {
      const g = payload[c.groupsClaim]
      if (Array.isArray(g)) groups = Object.freeze(g.filter((v): v is string => typeof v === 'string' && v.length <= MAX_CLAIM).slice(0, 256))
      else if (typeof g === 'string') groups = Object.freeze([g])
    }
    return { outcome: 'allow', username, claims, groups, validUntil: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined }
  }

  cacheKey(req: AuthRequest): string {
    return req.password?.toString('latin1') ?? ''
  }
}

function claimText(value: unknown): string | null {
  if (typeof value === 'string') return value.length <= MAX_CLAIM ? value : null
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
    const joined = value.join(',')
    return joined.length <= MAX_CLAIM ? joined : null
  }
  return null
}

/**
 * The JWKS could not be fetched or read: the backend is failing, not the token. Anything else
 * (a bad signature, a claim, a key of the wrong type for the token's algorithm) is the token's fault.
 */
function isUnavailable(err: unknown): boolean {
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return true
  // A JWKS answered with a status other than 200: jose's generic error.
  if (err instanceof errors.JOSEError) return err.code === 'ERR_JOSE_GENERIC'
  // fetch() failures (connection refused, DNS): "fetch failed" with the cause attached.
  return err instanceof Error && /fetch/i.test(err.message)
}
