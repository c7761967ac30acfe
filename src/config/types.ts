/**
 * The compiled, validated configuration every other module reads.
 * Produced by `loadConfig()` (src/config/load.ts) from a YAML file; frozen after load.
 * Units are already resolved: sizes in bytes, durations in milliseconds.
 */

import type { CoalescingConfig } from '../net/read-coalescing.js'
export type { CoalescingConfig }

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss'

/** `scheduling`: the Linux scheduling policy of Moat's threads (normal = SCHED_OTHER). */
export type SchedulingPolicy = 'normal' | 'batch'

export type ClientCertMode = 'none' | 'optional' | 'required'

/** One extra certificate served to clients that ask for `servername` (SNI). Paths are absolute. */
export interface SniCertificateConfig {
  readonly servername: string
  readonly cert: string
  readonly key: string
  readonly passphrase: string | null
}

/** TLS of an mqtts/wss listener. File paths are absolute (resolved against the config file). */
export interface ListenerTlsConfig {
  readonly cert: string
  readonly key: string
  readonly passphrase: string | null
  /** CA bundle client certificates are verified against (mutual TLS). */
  readonly ca: string | null
  readonly clientCert: ClientCertMode
  /** CRL files (PEM): a revoked client certificate is refused. */
  readonly crl: readonly string[]
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3'
  readonly ciphers: string | null
  readonly ecdhCurve: string | null
  readonly sni: readonly SniCertificateConfig[]
  /** Session resumption (tickets, TLS 1.2 session ids); absent: DEFAULT_TLS_RESUMPTION (config/tls-resumption.ts). */
  readonly resumption?: TlsResumptionConfig
}

/** `tls.resumption` of a listener: how a returning client skips the full handshake. */
export interface TlsResumptionConfig {
  /** false: no tickets and no session cache; every connection makes a full handshake. */
  readonly enabled: boolean
  /** How long a ticket or a cached session resumes (Node's sessionTimeout), in whole seconds as ms. */
  readonly lifetimeMs: number
  /** How often the ticket key is replaced; a ticket stops resuming with the key it was sealed under. */
  readonly rotateMs: number
  /** Entries of the TLS 1.2 session-id cache, per listener and process; 0: no cache. */
  readonly sessionCache: number
}

export interface ListenerConfig {
  readonly name: string
  readonly protocol: ListenerProtocol
  readonly host: string
  /** 0 picks a free port (tests). */
  readonly port: number
  /** mqtts and wss only (required there). Absent or null: no TLS. */
  readonly tls?: ListenerTlsConfig | null
  /** ws and wss: the HTTP path of the WebSocket endpoint (default /mqtt). */
  readonly path?: string
  /** ws and wss: how often each client is pinged; one unanswered ping closes it (default 30 s). */
  readonly pingIntervalMs?: number
  /** ws and wss: allowed `Origin` headers; null (default) allows any, including none. */
  readonly origins?: readonly string[] | null
  /** Read a PROXY protocol v1/v2 header before anything else; refuse connections without one. */
  readonly proxyProtocol?: boolean
  /** CIDRs whose PROXY headers are believed; other sources are refused. */
  readonly trustedProxies?: readonly string[]
}

/** TLS towards the broker. File paths are absolute. */
export interface UpstreamTlsConfig {
  readonly ca: string | null
  readonly cert: string | null
  readonly key: string | null
  readonly passphrase: string | null
  /** Name to verify the broker's certificate against (and to send as SNI); default: upstream.host. */
  readonly servername: string | null
  /** Do not verify the broker's certificate (logged at warn on every start). */
  readonly insecure: boolean
}

export interface UpstreamConfig {
  readonly host: string
  readonly port: number
  /** How long dialling the broker may take before the client is refused as "server unavailable". */
  readonly connectTimeoutMs: number
  /** Reach the broker over TLS; absent or null: plain TCP. */
  readonly tls?: UpstreamTlsConfig | null
  /** 'v2': send a PROXY protocol v2 header with the client's real address before its CONNECT. */
  readonly proxyProtocol?: 'v2' | null
  /** Local addresses upstream connections come from, round-robin; absent or empty: the system's choice. */
  readonly sourceAddresses?: readonly string[]
}

export interface AdminConfig {
  readonly host: string
  readonly port: number
  /** Bearer token of the ban API (`/bans`); null with no tokenFile: the ban API is disabled. */
  readonly token?: string | null
  /** File holding the token (absolute path), read at start. */
  readonly tokenFile?: string | null
  /** The URL other instances of the fleet ask for this instance's sessions; absent: the bound address. */
  readonly advertise?: string | null
}

export interface LimitsConfig {
  /** Largest whole MQTT packet (fixed header included) accepted from either side, in bytes. */
  readonly maxPacketSize: number
  /** A client that has not sent a complete CONNECT within this time is closed. */
  readonly connectTimeoutMs: number
  /** Payload cap for PUBLISH topics no `payload` rule matches; null: only maxPacketSize applies. */
  readonly maxPayload: number | null
  /** Per-topic-pattern payload caps; the first rule whose filter matches the topic decides. */
  readonly payload: readonly PayloadRule[]
  /** Per-connection rates (token buckets); null: off. */
  readonly messageRate: Rate | null
  readonly byteRate: Rate | null
  readonly packetRate: Rate | null
  /** How much of a rate may be spent at once, as a time: capacity = rate × burst (at least one unit). */
  readonly burstMs: number
  readonly onExcess: ExcessAction
  /** The same rates, shared by all connections of one user name; null: off. */
  readonly perUsername: UserRates | null
  /** Per-topic-pattern message rates per connection; every matching rule applies. */
  readonly topics: readonly TopicRateRule[]
  readonly connections: ConnectionLimits
  /** Distinct topic filters a client may hold; null: no limit. */
  readonly maxSubscriptions: number | null
  /** Unacknowledged QoS 1/2 PUBLISH a client may have towards the broker (5.0 Receive Maximum); null: no limit. */
  readonly maxInflight: number | null
  /** Largest keepalive a client may use, in seconds (5.0: Server Keep Alive); null: the client's own. */
  readonly maxKeepalive: number | null
  readonly overload: OverloadLimits
}

export type ExcessAction = 'throttle' | 'drop' | 'disconnect'

/** `count` units per `perMs` milliseconds. */
export interface Rate {
  readonly count: number
  readonly perMs: number
}

export interface PayloadRule {
  readonly topic: string
  readonly max: number
}

export interface UserRates {
  readonly messageRate: Rate | null
  readonly byteRate: Rate | null
  readonly packetRate: Rate | null
  readonly burstMs: number
  readonly onExcess: ExcessAction
  /** How many user names' buckets are kept (least recently used are forgotten). */
  readonly trackedUsers: number
}

export interface TopicRateRule {
  readonly topic: string
  readonly rate: Rate
  readonly burstMs: number
  readonly onExcess: ExcessAction
}

export interface ConnectionLimits {
  /** New connections accepted per unit of time, all addresses together; null: no limit. */
  readonly rate: Rate | null
  /** New connections per source address; null: no limit. */
  readonly perAddressRate: Rate | null
  /** Open connections per source address / per user name / in total; null: no limit. */
  readonly perAddress: number | null
  readonly perUsername: number | null
  readonly total: number | null
  /** How many source addresses' rate buckets are kept (least recently used are forgotten). */
  readonly trackedAddresses: number
}

export interface OverloadLimits {
  /** Refuse new connections while the event loop lags more than this (p99 over the last sample); null: off. */
  readonly eventLoopLagMs: number | null
  /** Refuse new connections while the resident set is above this many bytes; null: off. */
  readonly memory: number | null
  /** How often lag and memory are sampled. */
  readonly sampleMs: number
}

export interface ShutdownConfig {
  /** On SIGTERM/SIGINT: stop accepting, let sessions run this long, then close them. */
  readonly gracePeriodMs: number
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** `json`: one JSON object per line (level names, ISO-8601 time); `pretty`: one readable line per event. */
export type LogFormat = 'json' | 'pretty'

export interface LogConfig {
  readonly level: LogLevel
  readonly format: LogFormat
  /** Absolute path the log is appended to (reopened on SIGHUP and SIGUSR2); null: standard output. */
  readonly file: string | null
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
  /** Topic allow-list; null when the config has no `acl` section (every topic allowed, with a warning at start). */
  readonly acl: AclConfig | null
  /** Credential checks. A config without `auth` denies every client (anonymous: false, no backends). */
  readonly auth: AuthConfig
  /** Worker processes (`node:cluster`): 1 = one process, no cluster; 'auto' = one per core. Absent: 1. Read at start only. */
  readonly workers?: number | 'auto'
  /** Fleet-wide state in Redis (`cluster.redis`); absent or null: everything in process. */
  readonly cluster?: ClusterConfig | null
  /** Linux scheduling policy of every thread (src/scheduling.ts); absent: the one Moat was started with. */
  readonly scheduling?: SchedulingPolicy
  /** Read coalescing under load (src/net/read-coalescing.ts). */
  readonly coalescing: CoalescingConfig
  /** Which virtual patches are on (docs/virtual-patching.md); absent: all of them. */
  readonly virtualPatches?: VirtualPatchesConfig
}

/** The switchable virtual patches, each named after the broker CVE it stops. */
export const virtualPatchIds = ['cve-2017-7650', 'cve-2018-12543', 'cve-2019-11779', 'cve-2021-41039'] as const
export type VirtualPatchId = (typeof virtualPatchIds)[number]
/** `virtualPatches`: true where the patch is on. */
export type VirtualPatchesConfig = Readonly<Record<VirtualPatchId, boolean>>

/** `coalescing`: how long a busy turn of the event loop waits, and from which packet rate. */

/** What a fleet-wide limit does while Redis cannot be reached (docs/scaling.md, `onRedisDown`). */
export type RedisDownMode = 'fail-closed' | 'local'

export interface RedisNode {
  readonly host: string
  readonly port: number
}

export interface RedisConfig {
  readonly mode: 'url' | 'sentinel' | 'cluster'
  /** url mode: redis:// or rediss:// (TLS), password allowed in it. */
  readonly url: string | null
  readonly sentinel: { readonly name: string; readonly nodes: readonly RedisNode[] } | null
  /** cluster mode: seed nodes. */
  readonly nodes: readonly RedisNode[]
  /** sentinel / cluster modes: TLS to the nodes. */
  readonly tls: boolean
  /** Absolute path of a file holding the Redis password (read when the store is built). */
  readonly passwordFile: string | null
  /** Every key is `{prefix}:...` (a hash tag: one cluster slot, so Lua scripts touch one node). */
  readonly prefix: string
  readonly commandTimeoutMs: number
  readonly onRedisDown: {
    readonly connections: RedisDownMode
    readonly bans: RedisDownMode
    readonly lockout: RedisDownMode
  }
}

export interface ClusterConfig {
  readonly redis: RedisConfig | null
}

export type AclAction = 'publish' | 'subscribe'

/** One ACL rule, compiled from the config or imported from a Mosquitto acl_file. */
export interface AclRuleConfig {
  /** How logs and `moat check` name the rule: its `name`, else `acl.rules.N`, or `FILE:LINE` when imported. */
  readonly name: string
  readonly effect: 'allow' | 'deny'
  readonly publish: boolean
  readonly subscribe: boolean
  /** Topic pattern: MQTT wildcards and placeholders `{client_id}`, `{username}`, `{cert.cn}`, `{claims.NAME}`. */
  readonly topic: string
  /** Selectors: the rule applies only to clients that match every one given (null = any). */
  readonly users: readonly string[] | null
  readonly groups: readonly string[] | null
  readonly listeners: readonly string[] | null
  /** Source CIDRs (the real client address). */
  readonly sources: readonly string[] | null
  /** true: only anonymous clients; false: only authenticated ones; null: both (Mosquitto import). */
  readonly anonymous: boolean | null
  /** Allow rules: the highest QoS granted (publish QoS, subscription QoS); 2 = no ceiling. */
  readonly maxQos: number
  /** Allow rules: whether a retained publish is allowed. */
  readonly retain: boolean
  /** What a denial by this rule does: refuse the packet (default) or disconnect the client. */
  readonly onDeny: 'reject' | 'disconnect'
}

export interface AclConfig {
  /** First match wins; no match is a denial. Config rules first, then the imported Mosquitto file. */
  readonly rules: readonly AclRuleConfig[]
  /** Also check deliveries from the broker against the subscribe rules (defence in depth). */
  readonly outbound: boolean
  /**
   * A subscription filter that a deny rule only partly covers: `filter` leaves it to the later
   * rules and holds the denied topics back on delivery; `refuse` refuses it.
   */
  readonly overlap: 'filter' | 'refuse'
  /** A candidate rule set run beside the enforced one: would-be denials are logged and counted only. */
  readonly shadow: readonly AclRuleConfig[] | null
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
  /**
   * none; `username`: the client id equals the user name; `username-prefix`: it equals the user
   * name or continues it with a `separator` character (auth/client-id-binding.ts).
   */
  readonly bind: 'none' | 'username' | 'username-prefix'
  /** `username-prefix`: the characters that may end the user name within a client id; a user name holding one is refused. */
  readonly separator: string
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
  /**
   * Credentials no backend knows (every one had no opinion, or there are none): `refuse` them as
   * bad credentials, or pass the CONNECT on unchanged to the `broker`, whose CONNACK decides.
   */
  readonly unknownCredentials: 'refuse' | 'broker'
  /** How wrong credentials are refused: `bad-credentials` (5.0 0x86, 3.1.1 4) or `not-authorized` (0x87 / 5, Mosquitto 2.0's answer). */
  readonly badCredentialsReply: 'bad-credentials' | 'not-authorized'
}

/** The running configuration as a reader that follows reloads sees it (policy/store.ts holds it). */
export interface LiveConfig {
  readonly config: MoatConfig
  /** Bumped on every reload, so a reader can keep what it derived until the next one. */
  readonly generation: number
}
