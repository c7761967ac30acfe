/**
 * The compiled, validated configuration every other module reads.
 * Produced by `loadConfig()` (src/config/load.ts) from a YAML file; frozen after load.
 * Units are already resolved: sizes in bytes, durations in milliseconds.
 */

export type ListenerProtocol = 'mqtt'

export interface ListenerConfig {
  readonly name: string
  readonly protocol: ListenerProtocol
  readonly host: string
  /** 0 picks a free port (tests). */
  readonly port: number
}

export interface UpstreamConfig {
  readonly host: string
  readonly port: number
  /** How long dialling the broker may take before the client is refused as "server unavailable". */
  readonly connectTimeoutMs: number
}

export interface AdminConfig {
  readonly host: string
  readonly port: number
}

export interface LimitsConfig {
  /** Largest whole MQTT packet (fixed header included) accepted from either side, in bytes. */
  readonly maxPacketSize: number
  /** A client that has not sent a complete CONNECT within this time is closed. */
  readonly connectTimeoutMs: number
}

export interface ShutdownConfig {
  /** On SIGTERM/SIGINT: stop accepting, let sessions run this long, then close them. */
  readonly gracePeriodMs: number
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface LogConfig {
  readonly level: LogLevel
}

export interface MoatConfig {
  /** Path of the file this config was loaded from ('' when built in code). */
  readonly file: string
  readonly listeners: readonly ListenerConfig[]
  readonly upstream: UpstreamConfig
  /** null when the config has no `admin` section: no admin endpoint is opened. */
  readonly admin: AdminConfig | null
  readonly limits: LimitsConfig
  readonly shutdown: ShutdownConfig
  readonly log: LogConfig
  /** Credential checks. A config without `auth` denies every client (anonymous: false, no backends). */
  readonly auth: AuthConfig
}

// ---------------------------------------------------------------- auth (src/auth/*, checks/auth.ts)

/** Answers of a backend kept in memory: positive and negative TTLs separately; bounded entries. */
export interface AuthCacheConfig {
  readonly ttlMs: number
  readonly negativeTtlMs: number
  readonly max: number
}

export interface FileBackendConfig {
  readonly type: 'file'
  /** Absolute path (resolved against the config file's directory). */
  readonly path: string
  readonly cache: AuthCacheConfig | null
}

export interface HttpBackendConfig {
  readonly type: 'http'
  readonly url: string
  readonly timeoutMs: number
  /** Most sockets (and so requests in flight) to the service. */
  readonly connections: number
  /** Most requests waiting for a socket; beyond it a CONNECT is denied at once (fail closed). */
  readonly maxPending: number
  readonly headers: Readonly<Record<string, string>>
  readonly cache: AuthCacheConfig | null
}

export interface JwtBackendConfig {
  readonly type: 'jwt'
  /** Exactly one of secret, publicKey (PEM text), jwksUrl. */
  readonly secret: string | null
  readonly publicKey: string | null
  readonly jwksUrl: string | null
  readonly jwksCacheMaxAgeMs: number
  readonly jwksTimeoutMs: number
  readonly algorithms: readonly string[]
  readonly audience: readonly string[] | null
  readonly issuer: readonly string[] | null
  readonly clockToleranceMs: number
  readonly usernameClaim: string
  readonly claims: readonly string[]
  readonly groupsClaim: string | null
  readonly cache: AuthCacheConfig | null
}

export type CertificateField = 'cn' | 'subject' | 'san-dns' | 'san-email' | 'san-uri' | 'fingerprint'

export interface CertificateBackendConfig {
  readonly type: 'certificate'
  readonly usernameFrom: CertificateField
}

export type AuthBackendConfig = FileBackendConfig | HttpBackendConfig | JwtBackendConfig | CertificateBackendConfig

export interface ClientIdConfig {
  /** The whole client id must match (anchored); null = any. */
  readonly pattern: string | null
  readonly maxLength: number
  /** none; `username`: the client id equals the user name; `username-prefix`: it starts with it. */
  readonly bind: 'none' | 'username' | 'username-prefix'
  /** A CONNECT reusing a live client id: `same-identity` admits it only for the same user; `allow` always. */
  readonly takeover: 'same-identity' | 'allow'
}

export interface LockoutConfig {
  readonly maxFailures: number
  readonly windowMs: number
  readonly banMs: number
  readonly per: readonly ('address' | 'username')[]
  readonly maxEntries: number
  /** What a banned client is told: the same as a bad password (default), or 5.0 0x8A Banned. */
  readonly reply: 'bad-credentials' | 'banned'
}

export type UpstreamCredentials = 'passthrough' | 'strip' | { readonly username: string; readonly password: string | null }

export interface AuthConfig {
  /** Admit clients that present no credentials and that no backend accepted or denied. */
  readonly anonymous: boolean
  readonly backends: readonly AuthBackendConfig[]
  /** Longest a CONNECT may wait for the backends before it is denied (fail closed). */
  readonly timeoutMs: number
  readonly clientId: ClientIdConfig
  readonly lockout: LockoutConfig | null
  readonly upstreamCredentials: UpstreamCredentials
}
