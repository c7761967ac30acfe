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
