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
}
