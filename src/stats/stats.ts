/**
 * Hot-path counters as plain numbers and typed arrays: the per-packet path increments a
 * slot; prom-client reads them only at scrape time (metrics/registry.ts). Label values are bounded
 * by construction: packet types, reasons and listener names from the config.
 */
import { AuthStats } from './auth-stats.js'
import { ClusterStats } from './fleet-stats.js'
import { closeReasons, type CloseReason } from './reasons.js'
import type { RefuseReason } from './refuse-reasons.js'
import { TlsStats } from './tls-stats.js'

const reasonIndex = new Map<CloseReason, number>(closeReasons.map((r, i) => [r, i]))

export class Stats {
  /** Client → broker, by packet type (index = type 0..15). */
  readonly packetsFromClient = new Float64Array(16)
  readonly bytesFromClient = new Float64Array(16)
  /** Broker → client, by packet type. */
  readonly packetsFromBroker = new Float64Array(16)
  readonly bytesFromBroker = new Float64Array(16)
  /** Sessions ended, by reason (index into closeReasons). */
  readonly sessionsClosed = new Float64Array(closeReasons.length)
  /** Packets refused without closing the client (dropped QoS 0, refused QoS > 0), by reason. */
  readonly packetsRejected = new Float64Array(closeReasons.length)
  /** Packets that failed to decode, by packet type. */
  readonly decodeErrors = new Float64Array(16)
  readonly connectionsAccepted = new Map<string, number>()
  /** Shadow ACL would-be denials: [publish, subscribe]. */
  readonly aclShadowDenials = new Float64Array(2)
  /** Subscriptions revoked at the broker because a reloaded policy no longer allows them. */
  aclRevocations = 0
  /** Broker deliveries held back by the outbound ACL (or after a revocation). */
  deliveriesDenied = 0
  /** Connections a listener refused before any MQTT byte (PROXY header, TLS, WebSocket upgrade), by listener and reason. */
  readonly connectionsRefused = new Map<string, Map<RefuseReason, number>>()
  sessionsOpen = 0
  upstreamConnects = 0
  upstreamConnectFailures = 0
  upstreamConnectSeconds = 0
  configReloads = 0
  configReloadFailures = 0
  /** Sessions whose client Moat is not reading because a limit holds one of its packets (gauge). */
  sessionsThrottled = 0
  /** Times a limit made a session wait (rate throttle, 3.1.1 in-flight quota). */
  throttleWaits = 0
  /** Seconds sessions spent throttled (not read because a limit holds one of their packets). */
  throttledSeconds = 0
  /** Turns of the event loop that waited for reads to gather (net/read-coalescing.ts). */
  coalescingWaits = 0
  /** Seconds spent in those waits (measured, not the configured wait times the count). */
  coalescingWaitSeconds = 0
  /** Times the waits went off because reads did not gather behind them, or a trial found them dearer (net/read-coalescing.ts). */
  coalescingBackoffs = 0
  /** Of those, the times a trial found them dearer than no waits. */
  coalescingTrialBackoffs = 0
  /** Credential checks (stats/auth-stats.ts). */
  readonly auth = new AuthStats()
  /** The shared store and bans (stats/fleet-stats.ts). */
  readonly cluster = new ClusterStats()
  /** TLS handshakes, full or resumed (stats/tls-stats.ts). */
  readonly tls = new TlsStats()

  countClose(reason: CloseReason): void {
    this.sessionsClosed[reasonIndex.get(reason)!]! += 1
  }

  countReject(reason: CloseReason): void {
    this.packetsRejected[reasonIndex.get(reason)!]! += 1
  }

  countAccept(listener: string): void {
    this.connectionsAccepted.set(listener, (this.connectionsAccepted.get(listener) ?? 0) + 1)
  }

  rejectedFor(reason: CloseReason): number {
    return this.packetsRejected[reasonIndex.get(reason)!]!
  }

  countRefused(listener: string, reason: RefuseReason): void {
    let byReason = this.connectionsRefused.get(listener)
    if (byReason === undefined) this.connectionsRefused.set(listener, byReason = new Map())
    byReason.set(reason, (byReason.get(reason) ?? 0) + 1)
  }

  refusedFor(listener: string, reason: RefuseReason): number {
    return this.connectionsRefused.get(listener)?.get(reason) ?? 0
  }

  closedFor(reason: CloseReason): number {
    return this.sessionsClosed[reasonIndex.get(reason)!]!
  }
}
