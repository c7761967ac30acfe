/**
 * Decorator: keeps a backend's answers in an lru-cache. `fetch()` coalesces concurrent
 * lookups of one key into one backend call; allow answers live `ttl`, deny and no-opinion answers
 * `negativeTtl`; failures are never cached (the next CONNECT asks again). Bounded by `max` entries.
 *
 * An allow that carries `validUntil` (a JWT's exp) is kept no longer than that.
 *
 * `answerNow` hands out a fresh entry synchronously (the auth check then decides the CONNECT without
 * a promise); a miss goes through `authenticate`, whose lookup counts it.
 *
 * The key is a keyed SHA-256 of the request fields the backend's answer depends on (cache-key.ts):
 * the cache never holds a password, nor a fast unsalted hash of one.
 */
import { LRUCache } from 'lru-cache'
import type { AuthCacheConfig } from '../config/types.js'
import { fullCacheKey, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'
import type { AuthStats } from '../stats/auth-stats.js'
import { CacheKeyHasher } from './cache-key.js'

export function cached(backend: AuthBackend, config: AuthCacheConfig, stats: AuthStats): AuthBackend {
  const keyOf = backend.cacheKey?.bind(backend) ?? fullCacheKey
  const negativeTtl = config.negativeTtlMs
  const cache = new LRUCache<string, AuthResult, AuthRequest>({
    max: config.max,
    ttl: config.ttlMs,
    // The backend call is not tied to one caller: callers that give up leave it to the others.
    ignoreFetchAbort: true,
    async fetchMethod(_key, _stale, { options, context }) {
      const result = await backend.authenticate(context, AbortSignal.timeout(60_000))
      if (result.outcome !== 'allow') options.ttl = negativeTtl
      // Never keep an allow past the credentials' own expiry (a JWT's exp).
      else if (result.validUntil !== undefined) options.ttl = Math.max(1, Math.min(config.ttlMs, result.validUntil - Date.now()))
      return result
    },
  })
  const type = backend.type
  const hasher = new CacheKeyHasher()
  const keyFor = (req: AuthRequest): string => hasher.keyOf(keyOf(req))
  return {
    type,
    close: backend.close?.bind(backend),
    answerNow(req: AuthRequest): AuthResult | undefined {
      // A fresh entry only: an expired one, or a lookup still in flight, is left to authenticate().
      const result = cache.get(keyFor(req))
      if (result !== undefined) stats.cacheLookup(type, true)
      return result
    },
    async authenticate(req: AuthRequest): Promise<AuthResult> {
      const key = keyFor(req)
      const status: LRUCache.Status<string, AuthResult, AuthRequest> = {}
      const result = await cache.fetch(key, { context: req, status })
      stats.cacheLookup(type, status.fetch === 'hit' || status.fetch === 'inflight')
      if (result === undefined) throw new Error('auth cache: no answer')
      return result
    },
  }
}
