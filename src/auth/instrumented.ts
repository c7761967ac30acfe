/**
 * Decorator: measures a backend's real calls (duration histogram) and counts its failures by kind,
 * logging them at most once per interval. Placed inside the cache, so cached answers
 * are not timed as backend calls.
 */
import { errorKind, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'
import type { AuthStats } from '../stats/auth-stats.js'
import type { ThrottledLog } from './throttled-log.js'

export function instrumented(backend: AuthBackend, stats: AuthStats, log: ThrottledLog, name: string): AuthBackend {
  const type = backend.type
  return {
    type,
    cacheKey: backend.cacheKey?.bind(backend),
    close: backend.close?.bind(backend),
    async authenticate(req: AuthRequest, signal: AbortSignal): Promise<AuthResult> {
      const started = performance.now()
      try {
        return await backend.authenticate(req, signal)
      } catch (err) {
        // The caller gave up (the client left, or auth.timeout, which the auth check counts): not
        // this backend's failure.
        if (signal.aborted) throw err
        const kind = errorKind(err)
        stats.error(type, kind)
        log.warn(`${name}:${kind}`, { event: 'auth_backend_error', backend: name, kind, error: (err as Error).message }, 'auth backend failing: denying clients (fail closed)')
        throw err
      } finally {
        stats.duration(type, (performance.now() - started) / 1000)
      }
    },
  }
}
