/**
 * The metric catalogue: every metric Moat exports, with its name, help and bounded labels.
 * Values come from Stats at scrape time through collect(); nothing on the packet path
 * touches prom-client.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { closeReasons, denyReasons } from '../stats/reasons.js'

/** Close reasons that are refusals (not a client or broker simply going away). */
const denials = new Set<string>(denyReasons)
import { packetTypeNames } from '../protocol/packet-type.js'
import type { PolicyStore } from '../policy/store.js'
import { registerAuthMetrics } from './auth-metrics.js'
import { registerCertificateMetrics } from './certificates.js'
import { registerTlsMetrics } from './tls-metrics.js'
import type { Stats } from '../stats/stats.js'

type LabelledCounter = Counter<string>

function fillByType(counter: LabelledCounter, direction: string, values: Float64Array): void {
  for (let type = 0; type < 16; type++) {
    const value = values[type]!
    if (value > 0) counter.inc({ direction, packet_type: packetTypeNames[type]! }, value)
  }
}

function fillByReason(counter: LabelledCounter, values: Float64Array): void {
  for (let i = 0; i < closeReasons.length; i++) {
    const value = values[i]!
    if (value > 0) counter.inc({ reason: closeReasons[i]! }, value)
  }
}

/**
 * Node's process metrics under their usual names (`process_*`, `nodejs_*`), which standard
 * dashboards query; less prom-client's `nodejs_active_*_total`, gauges named like counters, which
 * only add up the `nodejs_active_*{type}` series beside them.
 */
function registerProcessMetrics(register: Registry): void {
  collectDefaultMetrics({ register })
  for (const metric of register.getMetricsAsArray()) {
    if (String(metric.type) !== 'counter' && metric.name.endsWith('_total')) register.removeSingleMetric(metric.name)
  }
}

export function createRegistry(stats: Stats, policy: PolicyStore): Registry {
  const register = new Registry()
  registerProcessMetrics(register)

  new Counter({
    name: 'moat_connections_accepted_total',
    help: 'Client connections accepted, by listener.',
    labelNames: ['listener'],
    registers: [register],
    collect() {
      this.reset()
      for (const [listener, value] of stats.connectionsAccepted) this.inc({ listener }, value)
    },
  })
  new Counter({
    name: 'moat_connections_refused_total',
    help: 'Connections refused, by listener and reason: before any MQTT byte (PROXY header, TLS handshake, client certificate, WebSocket upgrade), or by a connection limit or overload (answered with a refusing CONNACK).',
    labelNames: ['listener', 'reason'],
    registers: [register],
    collect() {
      this.reset()
      for (const [listener, byReason] of stats.connectionsRefused) {
        for (const [reason, value] of byReason) this.inc({ listener, reason }, value)
      }
    },
  })
  new Gauge({
    name: 'moat_sessions_open',
    help: 'Client sessions currently open.',
    registers: [register],
    collect() {
      this.set(stats.sessionsOpen)
    },
  })
  new Counter({
    name: 'moat_sessions_closed_total',
    help: 'Client sessions ended, by reason.',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset()
      fillByReason(this, stats.sessionsClosed)
    },
  })
  new Counter({
    name: 'moat_packets_rejected_total',
    help: 'Packets refused without closing the client (dropped or answered with a failure code), by reason.',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset()
      fillByReason(this, stats.packetsRejected)
    },
  })
  new Counter({
    name: 'moat_packets_total',
    help: 'MQTT packets received, by direction (client_to_broker, broker_to_client) and packet type.',
    labelNames: ['direction', 'packet_type'],
    registers: [register],
    collect() {
      this.reset()
      fillByType(this, 'client_to_broker', stats.packetsFromClient)
      fillByType(this, 'broker_to_client', stats.packetsFromBroker)
    },
  })
  new Counter({
    name: 'moat_packet_bytes_total',
    help: 'Bytes of MQTT packets received, by direction and packet type.',
    labelNames: ['direction', 'packet_type'],
    registers: [register],
    collect() {
      this.reset()
      fillByType(this, 'client_to_broker', stats.bytesFromClient)
      fillByType(this, 'broker_to_client', stats.bytesFromBroker)
    },
  })
  new Counter({
    name: 'moat_decode_errors_total',
    help: 'Client packets that failed to decode, by packet type.',
    labelNames: ['packet_type'],
    registers: [register],
    collect() {
      this.reset()
      for (let type = 0; type < 16; type++) {
        const value = stats.decodeErrors[type]!
        if (value > 0) this.inc({ packet_type: packetTypeNames[type]! }, value)
      }
    },
  })
  new Counter({
    name: 'moat_upstream_connects_total',
    help: 'Connections opened to the broker (one per accepted CONNECT).',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.upstreamConnects)
    },
  })
  new Counter({
    name: 'moat_upstream_connect_failures_total',
    help: 'Attempts to reach the broker that failed or timed out.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.upstreamConnectFailures)
    },
  })
  new Counter({
    name: 'moat_upstream_connect_seconds_total',
    help: 'Time spent opening broker connections (divide by moat_upstream_connects_total for the mean).',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.upstreamConnectSeconds)
    },
  })
  new Counter({
    name: 'moat_config_reloads_total',
    help: 'Config reloads (SIGHUP), by outcome; a failed reload keeps the running policy.',
    labelNames: ['outcome'],
    registers: [register],
    collect() {
      this.reset()
      this.inc({ outcome: 'success' }, stats.configReloads)
      this.inc({ outcome: 'failure' }, stats.configReloadFailures)
    },
  })
  new Counter({
    name: 'moat_acl_shadow_denials_total',
    help: 'Packets the shadow (candidate) ACL would have denied, by action; nothing was refused.',
    labelNames: ['action'],
    registers: [register],
    collect() {
      this.reset()
      this.inc({ action: 'publish' }, stats.aclShadowDenials[0]!)
      this.inc({ action: 'subscribe' }, stats.aclShadowDenials[1]!)
    },
  })
  new Counter({
    name: 'moat_acl_revocations_total',
    help: 'Subscriptions Moat unsubscribed at the broker because a reloaded policy no longer allows them.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.aclRevocations)
    },
  })
  new Counter({
    name: 'moat_deliveries_denied_total',
    help: 'Broker deliveries not forwarded to the client: topic not readable under the ACL (outbound check) or subscription revoked.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.deliveriesDenied)
    },
  })
  new Gauge({
    name: 'moat_policy_info',
    help: 'The running policy: a SHA-256 fingerprint of the compiled config (16 hex digits) and its generation; always 1.',
    labelNames: ['hash', 'generation'],
    registers: [register],
    collect() {
      this.reset()
      this.set({ hash: policy.hash, generation: String(policy.generation) }, 1)
    },
  })
  new Gauge({
    name: 'moat_config_generation',
    help: 'Generation of the running policy: 1 at start, +1 per successful reload.',
    registers: [register],
    collect() {
      this.set(policy.generation)
    },
  })
  new Gauge({
    name: 'moat_sessions_throttled',
    help: 'Sessions whose client Moat is not reading right now: a rate limit with onExcess throttle, or a 3.1.1 client at its in-flight quota, holds a packet.',
    registers: [register],
    collect() {
      this.set(stats.sessionsThrottled)
    },
  })
  new Counter({
    name: 'moat_throttled_seconds_total',
    help: 'Time sessions spent throttled: Moat was not reading the client because a limit held one of its packets.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.throttledSeconds)
    },
  })
  new Counter({
    name: 'moat_denials_total',
    help: 'Refusals by reason and action: reject (the packet is refused, the client stays) or disconnect (the client is closed).',
    labelNames: ['reason', 'action'],
    registers: [register],
    collect() {
      this.reset()
      for (let i = 0; i < closeReasons.length; i++) {
        const reason = closeReasons[i]!
        if (!denials.has(reason)) continue
        const rejected = stats.packetsRejected[i]!
        const closed = stats.sessionsClosed[i]!
        if (rejected > 0) this.inc({ reason, action: 'reject' }, rejected)
        if (closed > 0) this.inc({ reason, action: 'disconnect' }, closed)
      }
    },
  })
  new Counter({
    name: 'moat_throttle_waits_total',
    help: 'Times a limit made a client wait (rate with onExcess throttle, 3.1.1 in-flight quota); the packet was held, not lost.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.throttleWaits)
    },
  })
  new Counter({
    name: 'moat_coalescing_waits_total',
    help: 'Turns of the event loop that waited (coalescing.wait) for reads to gather, while the packet rate was above coalescing.above.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.coalescingWaits)
    },
  })
  new Counter({
    name: 'moat_coalescing_wait_seconds_total',
    help: 'Seconds the event loop spent in those waits (asleep: no CPU). The latency a packet gains is at most one wait per pass through Moat.',
    registers: [register],
    collect() {
      this.reset()
      this.inc(stats.coalescingWaitSeconds)
    },
  })
  new Counter({
    name: 'moat_coalescing_backoffs_total',
    help: 'Times the coalescing waits went off, each followed by a back-off before the packet rate may turn them on again, by reason: not_gathering (fewer than 8 packets per read: a steady load of many sockets), dearer (a trial found them costing more CPU per packet than no waits: kilobyte messages, TLS).',
    labelNames: ['reason'],
    registers: [register],
    collect() {
      this.reset()
      this.inc({ reason: 'not_gathering' }, stats.coalescingBackoffs - stats.coalescingTrialBackoffs)
      this.inc({ reason: 'dearer' }, stats.coalescingTrialBackoffs)
    },
  })
  registerAuthMetrics(register, stats.auth)
  registerCertificateMetrics(register, policy)
  registerTlsMetrics(register, stats.tls)
  return register
}
