/**
 * The auth policy of one config generation, compiled once: backends built and
 * decorated (instrumented inside, cached outside), the client-id rules compiled, the lockout bound
 * to the proxy's table. The per-session check (checks/auth.ts) only reads it.
 */
import type { AuthBackendConfig, AuthConfig, ClientIdConfig } from '../config/types.js'
import type { AuthBackend } from './backend.js'
import { cached } from './cached.js'
import { CertificateBackend } from './certificate.js'
import { FileBackend } from './file.js'
import { HttpBackend } from './http.js'
import { instrumented } from './instrumented.js'
import { JwtBackend } from './jwt.js'
import { Lockout } from './lockout.js'
import type { AuthRuntime } from './runtime.js'

export interface ClientIdRules {
  readonly pattern: RegExp | null
  readonly maxLength: number
  readonly bind: ClientIdConfig['bind']
  readonly separator: string
  readonly takeover: ClientIdConfig['takeover']
}

export interface AuthPolicy {
  readonly anonymous: boolean
  readonly backends: readonly AuthBackend[]
  readonly timeoutMs: number
  readonly clientId: ClientIdRules
  readonly lockout: Lockout | null
  readonly banReply: 'bad-credentials' | 'banned'
  readonly unknownCredentials: AuthConfig['unknownCredentials']
  readonly badCredentialsReply: AuthConfig['badCredentialsReply']
  readonly runtime: AuthRuntime
  /** Backend types this policy asks (a session admitted by a type no longer configured loses its right). */
  readonly backendTypes: ReadonlySet<string>
  /** The users of the `file` backends, to tell after a reload whether a user was removed. */
  readonly fileUsers: ReadonlyArray<FileBackend>
}

function buildBackend(b: AuthBackendConfig, configFile: string, index: number): AuthBackend {
  switch (b.type) {
    case 'file': return FileBackend.load(b.path, configFile, `auth.backends.${index}.path`)
    case 'http': return new HttpBackend(b)
    case 'jwt': return new JwtBackend(b)
    case 'certificate': return new CertificateBackend(b)
  }
}

export function compileAuthPolicy(config: AuthConfig, configFile: string, runtime: AuthRuntime): AuthPolicy {
  const fileUsers: FileBackend[] = []
  const backends = config.backends.map((b, i) => {
    let backend = buildBackend(b, configFile, i)
    if (backend instanceof FileBackend) fileUsers.push(backend)
    runtime.track(backend)
    backend = instrumented(backend, runtime.stats, runtime.backendLog, `${i}:${b.type}`)
    const cache = b.type === 'certificate' ? null : b.cache
    return cache === null ? backend : cached(backend, cache, runtime.stats)
  })
  const c = config.clientId
  return {
    anonymous: config.anonymous,
    backends,
    timeoutMs: config.timeoutMs,
    clientId: { pattern: c.pattern === null ? null : new RegExp(`^(?:${c.pattern})$`, 'u'), maxLength: c.maxLength, bind: c.bind, separator: c.separator, takeover: c.takeover },
    lockout: config.lockout === null ? null : new Lockout(config.lockout, runtime.lockouts(config.lockout.maxEntries), runtime.stats, runtime.sharedLockout, runtime.logger),
    banReply: config.lockout?.reply ?? 'bad-credentials',
    unknownCredentials: config.unknownCredentials,
    badCredentialsReply: config.badCredentialsReply,
    runtime,
    backendTypes: new Set(config.backends.map((b) => b.type)),
    fileUsers,
  }
}
