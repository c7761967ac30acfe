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
  /** Topic allow-list; null when the config has no `acl` section (every topic allowed, with a warning at start). */
  readonly acl: AclConfig | null
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
  /** A candidate rule set run beside the enforced one: would-be denials are logged and counted only. */
  readonly shadow: readonly AclRuleConfig[] | null
}
