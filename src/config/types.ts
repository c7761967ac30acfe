/**
 * The compiled, validated configuration every other module reads.
 * Produced by `loadConfig()` (src/config/load.ts) from a YAML file; frozen after load.
 * Units are already resolved: sizes in bytes, durations in milliseconds.
 */

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss'

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
}
