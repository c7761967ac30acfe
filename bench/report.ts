/**
 * What `npm run bench` prints: a table of medians per transport (plain TCP, then TLS; each with
 * the ratio to its direct broker), and the figures the issue's targets are judged on.
 */
import type { TargetKind, Transport } from './targets.js'

export type ScenarioKind = 'fan-in' | 'latency' | 'connect' | 'concurrent' | 'paired' | 'connections' | 'storm'

export interface Measurement {
  readonly scenario: string
  readonly kind: ScenarioKind
  readonly transport: Transport
  readonly target: TargetKind
  readonly runs: unknown[]
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

export function medianOf(measurements: readonly Measurement[], scenario: string, target: TargetKind, key: string): number {
  const m = measurements.find((x) => x.scenario === scenario && x.target === target)
  if (m === undefined) return NaN
  return median(m.runs.map((r) => (r as Record<string, number | null>)[key] ?? NaN))
}

export const fmt = (v: number, digits: number): string => Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–'

interface Row { readonly label: string; readonly scenario: string; readonly key: string; readonly unit: string; readonly digits: number; readonly scale?: number }

function rowsOf(m: Measurement): Row[] {
  const s = m.scenario
  const rows: Row[] = []
  const row = (label: string, key: string, unit: string, digits: number, scale?: number): void => {
    rows.push({ label: `${s}: ${label}`, scenario: s, key, unit, digits, ...(scale === undefined ? {} : { scale }) })
  }
  const tls = m.transport === 'tls'
  if (m.kind === 'fan-in') {
    row('delivered to the subscriber', 'deliveredPerSecond', 'msg/s', 0)
    if (s.includes(' at ')) row('forwarded into the broker (written by proxy; by publishers when direct)', 'forwardedPerSecond', 'msg/s', 0)
    row('read by the broker', 'brokerReceivedPerSecond', 'msg/s', 0)
    row(tls ? 'not delivered (of what the broker read; direct-tls: of what was published)' : 'read by the broker, not delivered', 'notDeliveredShare', '%', 1, 100)
    if (s.includes(' at ')) row('sent by publishers', 'sentPerSecond', 'msg/s', 0)
    row('proxy CPU s / 1M msgs forwarded into the broker', 'proxyCpuUsPerForwarded', 's', 2)
    row('proxy CPU s / 1M msgs delivered', 'proxyCpuUsPerDelivered', 's', 2)
    row('proxy CPU spent in the kernel (system calls)', 'proxyKernelShare', '%', 0, 100)
    row('broker CPU s / 1M msgs delivered', 'brokerCpuUsPerDelivered', 's', 2)
    row('broker CPU s / 1M msgs read by the broker', 'brokerCpuUsPerReceived', 's', 2)
    row('core 1 used by the load generator (publishers + subscriber)', 'loadgenCpuShare', '%', 0, 100)
    row("Moat's coalescing waits (whole run, warm-up included)", 'coalescingWaits', '', 0)
  } else if (m.kind === 'latency') {
    for (const [k, l] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['p999Ms', 'p99.9']] as const) row(l, k, 'ms', 3)
    if (s.includes(' under ')) {
      row('load delivered to its subscriber', 'loadDeliveredPerSecond', 'msg/s', 0)
      row("proxy CPU s / 1M load msgs delivered (probe's included)", 'loadProxyCpuUsPerDelivered', 's', 2)
    }
    row("Moat's coalescing waits (whole run, warm-up included)", 'coalescingWaits', '', 0)
  } else if (m.kind === 'connect') {
    for (const [k, l] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['maxMs', 'max']] as const) row(`open→CONNACK ${l}`, k, 'ms', 3)
    row('proxy CPU per CONNECT round', 'proxyCpuMsPerConnect', 'ms', 3)
    row('broker CPU per CONNECT round', 'brokerCpuMsPerConnect', 'ms', 3)
    row('load generator CPU per CONNECT round', 'loadgenCpuMsPerConnect', 'ms', 3)
    if (tls) row('rounds that resumed a TLS session', 'resumedShare', '%', 0, 100)
  } else if (m.kind === 'concurrent') {
    row('connections per second', 'achievedRate', 'conn/s', 0)
    row('proxy CPU per connection', 'proxyCpuMsPerConnection', 'ms', 3)
    row('broker CPU per connection', 'brokerCpuMsPerConnection', 'ms', 3)
    row('CONNECT→CONNACK p50', 'connectP50Ms', 'ms', 3)
    row('CONNECT→CONNACK p99', 'connectP99Ms', 'ms', 3)
    row('core used: load generator', 'loadgenCpuShare', '%', 0, 100)
    row('core used: proxy', 'proxyCpuShare', '%', 0, 100)
    row('core used: broker', 'brokerCpuShare', '%', 0, 100)
    if (tls) row('connections that resumed a TLS session', 'resumedShare', '%', 0, 100)
    row("connections Moat refused (whole run; reasons in the JSON)", 'moatRefused', '', 0)
  } else if (m.kind === 'paired') {
    row('proxy CPU per connection (median of the windows)', 'proxyCpuMsPerConnection', 'ms', 3)
    row('… minus the other proxy of the pair, window by window (median)', 'pairedDifferenceMs', 'ms', 3)
    row('connections per second (each proxy gets half the load generator)', 'achievedRate', 'conn/s', 0)
    if (tls) row('connections that resumed a TLS session', 'resumedShare', '%', 0, 100)
  } else if (m.kind === 'connections') {
    row('connected', 'connected', '', 0)
    row('achieved rate', 'achievedRate', 'conn/s', 0)
    row('core used while opening: load generator', 'loadgenCpuShare', '%', 0, 100)
    row('core used while opening: proxy', 'proxyCpuShare', '%', 0, 100)
    row('core used while opening: broker', 'brokerCpuShare', '%', 0, 100)
    row('CONNECT→CONNACK p50', 'connectP50Ms', 'ms', 3)
    row('CONNECT→CONNACK p99', 'connectP99Ms', 'ms', 3)
    row('one CONNECT at a time, p50', 'probeP50Ms', 'ms', 3)
    row('one CONNECT at a time, p99', 'probeP99Ms', 'ms', 3)
    row(`proxy RSS per idle${tls ? ' TLS' : ''} connection`, 'proxyBytesPerConnection', 'KiB', 2, 1 / 1024)
    row('broker RSS per connection', 'brokerBytesPerConnection', 'KiB', 2, 1 / 1024)
  } else {
    row('connected', 'connected', '', 0)
    row('first open → all connected', 'allConnectedMs', 'ms', 0)
    row('load generator loop opening them', 'openLoopMs', 'ms', 0)
    for (const [k, l] of [['connackP50Ms', 'p50'], ['connackP99Ms', 'p99'], ['connackMaxMs', 'max']] as const) row(`open→CONNACK ${l}`, k, 'ms', 1)
    row('proxy CPU per connection', 'proxyCpuMsPerConnection', 'ms', 3)
    row('broker CPU per connection', 'brokerCpuMsPerConnection', 'ms', 3)
    row('load generator CPU per connection', 'loadgenCpuMsPerConnection', 'ms', 3)
    row('core used: load generator', 'loadgenCpuShare', '%', 0, 100)
    row('core used: proxy', 'proxyCpuShare', '%', 0, 100)
    row('core used: broker', 'brokerCpuShare', '%', 0, 100)
    row('clients that had to retry (listen queue full)', 'retriedClients', '', 0)
    row('clients that did not connect (causes in the JSON: failureCauses)', 'failed', '', 0)
    row("connections Moat refused (whole run; reasons in the JSON)", 'moatRefused', '', 0)
    row('proxy RSS before', 'proxyRssBefore', 'MiB', 1, 1 / 1048576)
    row('proxy peak RSS during the storm', 'proxyRssPeak', 'MiB', 1, 1 / 1048576)
    const settle = medianOf([m], s, m.target, 'settleSeconds')
    row(`proxy RSS ${fmt(settle, 0)} s after all closed`, 'proxyRssAfter', 'MiB', 1, 1 / 1048576)
    row('proxy RSS after / before', 'proxyRssAfterRatio', '', 3)
    if (tls) row('clients that resumed a TLS session', 'resumedShare', '%', 0, 100)
  }
  return rows
}

const ORDER: Record<Transport, TargetKind[]> = {
  plain: ['direct', 'haproxy', 'node-pipe', 'moat', 'moat-acl5000'],
  tls: ['direct-tls', 'haproxy-tls', 'node-tls-pipe', 'moat-tls'],
}

/** The table of one transport's scenarios: medians, then each target's ratio to the direct broker. */
export function table(measurements: readonly Measurement[], transport: Transport): string {
  const mine = measurements.filter((m) => m.transport === transport)
  if (mine.length === 0) return ''
  const rows: Row[] = []
  for (const m of mine) if (!rows.some((r) => r.scenario === m.scenario)) rows.push(...rowsOf(m))
  const direct: TargetKind = transport === 'tls' ? 'direct-tls' : 'direct'
  const columns = ORDER[transport].filter((t) => mine.some((m) => m.target === t))
  const header = ['figure', 'unit', ...columns, ...columns.filter((c) => c !== direct).map((c) => `${c}/${direct}`)]
  const lines = [header]
  for (const r of rows) {
    const d = medianOf(measurements, r.scenario, direct, r.key)
    const cells = columns.map((c) => fmt(medianOf(measurements, r.scenario, c, r.key) * (r.scale ?? 1), r.digits))
    const ratios = columns.filter((c) => c !== direct).map((c) => fmt(medianOf(measurements, r.scenario, c, r.key) / d, 3))
    lines.push([r.label, r.unit, ...cells, ...ratios])
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  return lines.map((l, n) => {
    const row = `| ${l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
    return n === 0 ? `${row}\n|${widths.map((w, i) => (i < 2 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|` : row
  }).join('\n')
}

/** What each TLS target negotiated (from the connect runs), e.g. "moat-tls TLSv1.3 TLS_AES_256_GCM_SHA384 X25519". */
export function negotiatedLines(measurements: readonly Measurement[]): string[] {
  const seen = new Map<TargetKind, string>()
  for (const m of measurements) {
    for (const r of m.runs) {
      const t = (r as { tls?: string | null }).tls
      if (typeof t === 'string' && !seen.has(m.target)) seen.set(m.target, t)
    }
  }
  return [...seen].map(([k, t]) => `${k}: ${t}`)
}
