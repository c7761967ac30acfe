/**
 * The end-to-end benchmark: the same scenarios against Mosquitto reached directly, HAProxy (TCP
 * mode) in front of it, a naive Node pipe proxy (fan-in-rate, latency, connect), and Moat with a
 * realistic policy in front of it (and, for the fan-in scenarios, Moat with 5,000 ACL rules).
 * Broker and proxy share core 0, this process (the load generator) runs on core 1. Each scenario
 * runs `--runs` times per target (targets interleaved, each started fresh); the table shows
 * medians and the ratio to the direct broker, then the issue's targets; the JSON keeps every run.
 *
 *   npm run bench -- [--quick] [--only fan-in,fan-in-rate,latency,connect,connections,loaded-latency] [--runs 3]
 *                    [--out bench/results/<date>.json] [--connections 50000] [--connect-rate 5000]
 *                    [--connect-inflight 100] [--connect-rounds 2000] [--connect-warmup 10000] [--rate 10000]
 *                    [--targets direct,haproxy,moat] [--sched batch] [--coalescing 0 | WAIT[,ABOVE]]
 *                    [--load-rate 25000] (loaded-latency: the latency probe while 50 publishers offer a QoS 0 load)
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { connect, DEFAULT_WARMUP_ROUNDS, type ConnectResult } from './scenarios/connect.js'
import { connections, type ConnectionsResult } from './scenarios/connections.js'
import { fanIn, type FanInResult } from './scenarios/fan-in.js'
import { latency, type LatencyResult } from './scenarios/latency.js'
import { coalescingWaits, nofileLimits, raiseOwnNofile, startTarget, type Placement, type TargetKind } from './targets.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    out: { type: 'string' },
    connections: { type: 'string' },
    'connect-rate': { type: 'string' },
    'connect-inflight': { type: 'string', default: '100' },
    'connect-rounds': { type: 'string' },
    'connect-warmup': { type: 'string' },
    rate: { type: 'string', default: '10000' },
    targets: { type: 'string' },
    sched: { type: 'string', default: 'normal' },
    coalescing: { type: 'string' },
    'load-rate': { type: 'string', default: '25000' },
  },
})
if (values.sched !== 'normal' && values.sched !== 'batch') throw new Error(`--sched: normal or batch, not ${values.sched}`)
const QUICK = values.quick
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3))
const SECONDS = QUICK ? 2 : 5
/** The fixed-rate window: long, since its CPU per message decides the 5,000-rule target (a few % apart). */
const RATE_SECONDS = QUICK ? 3 : 10
const WARMUP = QUICK ? 1 : 2
/**
 * Latency warms up longer: a tail percentile is set by a few pauses, and a Node proxy pauses most
 * in its first seconds of traffic. Measured 2026-11-25 (`--trace-gc-nvp`, 2,000 msg/s): Moat's
 * scavenges 3 and 6 s after its first traffic promote 1.2–1.3 MB each (what start-up and JIT
 * warm-up left in the young generation) and pause 8–12 ms on the shared core; from then on they
 * promote nothing and pause ~2 ms every 3 s. After 2 s of warm-up the window caught both long
 * pauses (p99.9 7–12 ms), after 10 s neither (p99.9 3.8 ms, as node-pipe). Every target gets the
 * same warm-up: what is measured is a proxy that has been running a while.
 */
const LATENCY_WARMUP = QUICK ? 1 : 10
const ONLY = new Set((values.only ?? 'fan-in,fan-in-rate,latency,loaded-latency,connect,connections').split(','))
/**
 * Targets per scenario. By default: node-pipe (cheap) where it is a useful floor (fixed rate,
 * latency, CONNECT), moat-acl5000 in both fan-in scenarios (the cost of a large policy). With
 * --targets, exactly those (plus moat-acl5000 in the fan-in scenarios when moat is listed).
 */
const BASE: TargetKind[] = ['direct', 'haproxy', 'moat']
const WITH_PIPE: TargetKind[] = ['direct', 'haproxy', 'node-pipe', 'moat']
function targetsFor(defaults: TargetKind[], withAcl: boolean): TargetKind[] {
  const list = values.targets === undefined ? defaults : (values.targets.split(',') as TargetKind[])
  return withAcl && list.includes('moat') && !list.includes('moat-acl5000') ? [...list, 'moat-acl5000'] : list
}
const day = new Date().toISOString().replace(/:\d\d\.\d+Z$/, '').replace(/:/g, '')
const OUT = values.out ?? `bench/results/${day}.json`

// File descriptors: a proxy holds two per client (client + broker side). Past the hard limit
// (prlimit cannot go beyond it without CAP_SYS_RESOURCE), the connection count is lowered.
const wanted = Number(values.connections ?? (QUICK ? 2000 : 50_000))
// This process holds one descriptor per client: raise its own limit first (root may go past the hard limit).
if (nofileLimits()[0] < wanted + 1000) raiseOwnNofile(Math.max(2 * wanted + 1000, nofileLimits()[0]))
const [ownSoft, hard] = nofileLimits()
const connectionCount = Math.min(wanted, Math.floor((hard - 1000) / 2), ownSoft - 1000)
if (ONLY.has('connections') && connectionCount < wanted) {
  console.error(`open-file limits (this process ${ownSoft}, hard ${hard}): connections scenario lowered from ${wanted} to ${connectionCount} (a proxy needs 2 fds per client, the load generator 1)`)
}
const placement: Placement = {
  serverCores: '0',
  nofile: Math.max(2 * connectionCount + 1000, 4096),
  // ~20,000 connections per source address towards the one broker port; below that none is set
  // (the proxies' default configuration; measured 2026-11-25, one source address made no
  // difference to the connect figures). BENCH_UPSTREAM_SOURCES=N forces N (0: none).
  upstreamSources: process.env.BENCH_UPSTREAM_SOURCES !== undefined ? Number(process.env.BENCH_UPSTREAM_SOURCES) : connectionCount > 20_000 ? Math.ceil(connectionCount / 20_000) : 0,
  // --sched batch: every proxy (HAProxy, node-pipe, Moat; never the broker) under SCHED_BATCH.
  proxyScheduling: values.sched,
  // --coalescing 0: Moat without read coalescing; --coalescing 300us,1/s: wait at any rate; absent: Moat's default.
  moatCoalescing: values.coalescing ?? null,
}

// Pin the load generator (every thread of this process) to core 1.
const nproc = cpus().length
if (nproc >= 2) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
else console.error('one core only: nothing is pinned; figures mix load generator and servers')

interface Measurement { readonly scenario: string; readonly target: TargetKind; readonly runs: unknown[] }
const measurements: Measurement[] = []
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'))

async function measure<R>(scenario: string, targets: readonly TargetKind[], body: (t: Awaited<ReturnType<typeof startTarget>>, runId: string) => Promise<R>): Promise<void> {
  const byTarget = new Map<TargetKind, R[]>(targets.map((t) => [t, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const kind of targets) {
      const target = await startTarget(kind, dir, placement)
      try {
        let result = await body(target, `${run}`)
        // Moat: how many turns of its event loop waited (coalescing) over the run, warm-up included.
        if (target.adminPort !== null) result = { ...result, ...await coalescingWaits(target.adminPort) }
        byTarget.get(kind)!.push(result)
        process.stderr.write(`${scenario} ${kind} run ${run + 1}/${RUNS}: ${JSON.stringify(result)}\n`)
      } finally {
        await target.stop()
      }
    }
  }
  for (const [target, runs] of byTarget) measurements.push({ scenario, target, runs })
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

function medianOf(scenario: string, target: TargetKind, key: string): number {
  const m = measurements.find((x) => x.scenario === scenario && x.target === target)
  if (m === undefined) return NaN
  return median(m.runs.map((r) => (r as Record<string, number | null>)[key] ?? NaN))
}

try {
  if (ONLY.has('fan-in')) {
    const targets = targetsFor(BASE, true)
    const b64 = QUICK ? 4000 : 10_000
    const b1k = QUICK ? 2000 : 5000
    await measure<FanInResult>(`fan-in qos0 64B burst ${b64 * 50 / 1000}k`, targets, (t, r) => fanIn(t, { publishers: 50, payloadBytes: 64, qos: 0, rate: 0, burst: b64, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f64-${r}`))
    await measure<FanInResult>(`fan-in qos0 1KiB burst ${b1k * 50 / 1000}k`, targetsFor(BASE, false), (t, r) => fanIn(t, { publishers: 50, payloadBytes: 1024, qos: 0, rate: 0, burst: b1k, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f1k-${r}`))
  }
  if (ONLY.has('fan-in-rate')) {
    await measure<FanInResult>(`fan-in qos1 64B at ${values.rate}/s`, targetsFor(WITH_PIPE, true), (t, r) => fanIn(t, { publishers: 50, payloadBytes: 64, qos: 1, rate: Number(values.rate), burst: 0, seconds: RATE_SECONDS, warmupSeconds: WARMUP, batch: 1 }, `fr-${r}`))
  }
  if (ONLY.has('latency')) {
    await measure<LatencyResult>('latency qos1 2000/s', targetsFor(WITH_PIPE, false), (t, r) => latency(t, { rate: 2000, seconds: QUICK ? 3 : 10, warmupSeconds: LATENCY_WARMUP, payloadBytes: 64 }, `l-${r}`))
  }
  if (ONLY.has('loaded-latency')) {
    // The latency probe while 50 publishers offer a steady QoS 0 load through the same proxy: what
    // a message's latency is when the proxy is busy (Moat: with coalescing acting above its rate).
    const load = Number(values['load-rate'])
    const probeSeconds = QUICK ? 3 : 10
    await measure<LatencyResult & { loadDeliveredPerSecond: number; loadProxyCpuUsPerDelivered: number | null }>(`latency qos1 2000/s under ${load}/s qos0 load`, targetsFor(BASE, false), async (t, r) => {
      const loadRun = fanIn(t, { publishers: 50, payloadBytes: 64, qos: 0, rate: load, burst: 0, seconds: probeSeconds + 1, warmupSeconds: LATENCY_WARMUP - 1, batch: 1 }, `ll-load-${r}`)
      const probe = await latency(t, { rate: 2000, seconds: probeSeconds, warmupSeconds: LATENCY_WARMUP, payloadBytes: 64 }, `ll-${r}`)
      const loaded = await loadRun
      return { ...probe, loadDeliveredPerSecond: loaded.deliveredPerSecond, loadProxyCpuUsPerDelivered: loaded.proxyCpuUsPerDelivered }
    })
  }
  if (ONLY.has('connect')) {
    // 2,000 rounds: a p99 over 500 was the 5th slowest round, set or not by whether one of Moat's
    // (or node-pipe's) rare GC pauses fell in the window: Moat 0.57 / 2.11 / 1.23 ms in three runs
    // of 500, 0.62 / 0.86 / 0.73 in three of 2,000 (2026-12-03).
    const rounds = Number(values['connect-rounds'] ?? (QUICK ? 200 : 2000))
    const warmupRounds = Number(values['connect-warmup'] ?? (QUICK ? 2000 : DEFAULT_WARMUP_ROUNDS))
    await measure<ConnectResult>(`connect ${rounds} sequential after ${warmupRounds}`, targetsFor(WITH_PIPE, false), (t, r) => connect(t, { rounds, warmupRounds }, `k-${r}`))
  }
  if (ONLY.has('connections')) {
    const rate = Number(values['connect-rate'] ?? (QUICK ? 2000 : 5000))
    const inFlight = Number(values['connect-inflight'])
    await measure<ConnectionsResult>(`connections ${connectionCount} at ≤${rate}/s`, targetsFor(BASE, false), (t, r) => connections(t, { count: connectionCount, rate, inFlight, sources: 8, probes: QUICK ? 100 : 300 }, `c-${r}`))
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

// --- Table ---
interface Row { readonly label: string; readonly scenario: string; readonly key: string; readonly unit: string; readonly digits: number; readonly scale?: number }
const rows: Row[] = []
for (const m of measurements) {
  if (rows.some((r) => r.scenario === m.scenario)) continue
  const s = m.scenario
  if (s.startsWith('fan-in')) {
    rows.push({ label: `${s}: delivered to the subscriber`, scenario: s, key: 'deliveredPerSecond', unit: 'msg/s', digits: 0 })
    if (s.includes(' at ')) rows.push({ label: `${s}: forwarded into the broker (written by proxy; by publishers when direct)`, scenario: s, key: 'forwardedPerSecond', unit: 'msg/s', digits: 0 })
    rows.push({ label: `${s}: read by the broker`, scenario: s, key: 'brokerReceivedPerSecond', unit: 'msg/s', digits: 0 })
    rows.push({ label: `${s}: read by the broker, not delivered`, scenario: s, key: 'notDeliveredShare', unit: '%', digits: 1, scale: 100 })
    if (s.includes(' at ')) rows.push({ label: `${s}: sent by publishers`, scenario: s, key: 'sentPerSecond', unit: 'msg/s', digits: 0 })
    rows.push({ label: `${s}: proxy CPU s / 1M msgs forwarded into the broker`, scenario: s, key: 'proxyCpuUsPerForwarded', unit: 's', digits: 2 })
    rows.push({ label: `${s}: proxy CPU s / 1M msgs delivered`, scenario: s, key: 'proxyCpuUsPerDelivered', unit: 's', digits: 2 })
    rows.push({ label: `${s}: proxy CPU spent in the kernel (system calls)`, scenario: s, key: 'proxyKernelShare', unit: '%', digits: 0, scale: 100 })
    rows.push({ label: `${s}: broker CPU s / 1M msgs delivered`, scenario: s, key: 'brokerCpuUsPerDelivered', unit: 's', digits: 2 })
    rows.push({ label: `${s}: broker CPU s / 1M msgs read by the broker`, scenario: s, key: 'brokerCpuUsPerReceived', unit: 's', digits: 2 })
    rows.push({ label: `${s}: Moat's coalescing waits (whole run, warm-up included)`, scenario: s, key: 'coalescingWaits', unit: '', digits: 0 })
  } else if (s.startsWith('latency')) {
    for (const [k, l] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['p999Ms', 'p99.9']] as const) rows.push({ label: `${s}: ${l}`, scenario: s, key: k, unit: 'ms', digits: 3 })
    if (s.includes(' under ')) {
      rows.push({ label: `${s}: load delivered to its subscriber`, scenario: s, key: 'loadDeliveredPerSecond', unit: 'msg/s', digits: 0 })
      rows.push({ label: `${s}: proxy CPU s / 1M load msgs delivered (probe's included)`, scenario: s, key: 'loadProxyCpuUsPerDelivered', unit: 's', digits: 2 })
    }
    rows.push({ label: `${s}: Moat's coalescing waits (whole run, warm-up included)`, scenario: s, key: 'coalescingWaits', unit: '', digits: 0 })
  } else if (s.startsWith('connect ')) {
    for (const [k, l] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['maxMs', 'max']] as const) rows.push({ label: `${s}: open→CONNACK ${l}`, scenario: s, key: k, unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: proxy CPU per CONNECT round`, scenario: s, key: 'proxyCpuMsPerConnect', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: broker CPU per CONNECT round`, scenario: s, key: 'brokerCpuMsPerConnect', unit: 'ms', digits: 3 })
  } else {
    rows.push({ label: `${s}: connected`, scenario: s, key: 'connected', unit: '', digits: 0 })
    rows.push({ label: `${s}: achieved rate`, scenario: s, key: 'achievedRate', unit: 'conn/s', digits: 0 })
    rows.push({ label: `${s}: core used while opening: load generator`, scenario: s, key: 'loadgenCpuShare', unit: '%', digits: 0, scale: 100 })
    rows.push({ label: `${s}: core used while opening: proxy`, scenario: s, key: 'proxyCpuShare', unit: '%', digits: 0, scale: 100 })
    rows.push({ label: `${s}: core used while opening: broker`, scenario: s, key: 'brokerCpuShare', unit: '%', digits: 0, scale: 100 })
    rows.push({ label: `${s}: CONNECT→CONNACK p50`, scenario: s, key: 'connectP50Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: CONNECT→CONNACK p99`, scenario: s, key: 'connectP99Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: one CONNECT at a time, p50`, scenario: s, key: 'probeP50Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: one CONNECT at a time, p99`, scenario: s, key: 'probeP99Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: proxy RSS per connection`, scenario: s, key: 'proxyBytesPerConnection', unit: 'KiB', digits: 2, scale: 1 / 1024 })
    rows.push({ label: `${s}: broker RSS per connection`, scenario: s, key: 'brokerBytesPerConnection', unit: 'KiB', digits: 2, scale: 1 / 1024 })
  }
}
const ORDER: TargetKind[] = ['direct', 'haproxy', 'node-pipe', 'moat', 'moat-acl5000']
const columns: TargetKind[] = ORDER.filter((t) => measurements.some((m) => m.target === t))
const fmt = (v: number, digits: number): string => Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–'
const header = ['figure', 'unit', ...columns, ...columns.filter((c) => c !== 'direct').map((c) => `${c}/direct`)]
const lines = [header]
for (const r of rows) {
  const direct = medianOf(r.scenario, 'direct', r.key)
  const cells = columns.map((c) => fmt(medianOf(r.scenario, c, r.key) * (r.scale ?? 1), r.digits))
  const ratios = columns.filter((c) => c !== 'direct').map((c) => fmt(medianOf(r.scenario, c, r.key) / direct, 3))
  lines.push([r.label, r.unit, ...cells, ...ratios])
}
const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
const table = lines.map((l, n) => {
  const row = `| ${l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return n === 0 ? `${row}\n|${widths.map((w, i) => (i < 2 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|` : row
}).join('\n')

const cpuModel = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model ?? '?'
let commit = 'unknown'
try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim() } catch { /* not a checkout */ }
const machine = { nproc, cpu: cpuModel, node: process.version, kernel: release(), loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') }
console.log(`\nMoat benchmark ${new Date().toISOString()} commit ${commit}, ${RUNS} run(s) per target, median${QUICK ? ' (--quick)' : ''}`)
console.log(`machine: ${nproc} × ${cpuModel}, Node ${process.version}, Linux ${machine.kernel}, load average at the end ${machine.loadAverage}`)
if (placement.moatCoalescing != null) console.log(`Moat with coalescing: ${placement.moatCoalescing} (--coalescing)`)
if (placement.proxyScheduling === 'batch') console.log('proxies run under SCHED_BATCH (chrt -b 0): no wakeup preemption of the broker they share core 0 with')
console.log('broker + proxy on core 0, load generator on core 1. Fan-in: "read by the broker" = PUBLISH bytes the broker read from the publishers\' connections,')
console.log('"forwarded into the broker" = PUBLISH bytes written into them by the process at their other end (both kernel counts, ss tcp_info, subscriber\'s connection')
console.log('left out) / frame size; in a burst the two are equal (every buffer empty at both ends). "X CPU s / 1M msgs Y" = CPU seconds (all threads, schedstat) of X /')
console.log('millions of messages Y, both over the whole burst (first publish to the last delivery), or over the window at a fixed rate\n')
console.log(table)
const summary = issueTargets()
if (summary.length > 0) console.log(`\nThe issue's targets (medians above):\n${summary.map((l) => `- ${l}`).join('\n')}`)
mkdirSync(dirname(OUT), { recursive: true })

writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), commit, machine, options: { quick: QUICK, runs: RUNS, seconds: SECONDS, connections: connectionCount, placement }, measurements }, null, 2))
console.log(`\nresults: ${OUT}`)

/** The figures the issue's targets are judged on, each from medians of the table. */
function issueTargets(): string[] {
  const out: string[] = []
  const f = (v: number, d = 2): string => fmt(v, d)
  for (const m of measurements) {
    const s = m.scenario
    if (!s.startsWith('fan-in') || m.target !== 'moat') continue
    const moat = medianOf(s, 'moat', 'proxyCpuUsPerForwarded')
    const haproxy = medianOf(s, 'haproxy', 'proxyCpuUsPerForwarded')
    const pipe = medianOf(s, 'node-pipe', 'proxyCpuUsPerForwarded')
    const over = s.includes(' at ') ? 'over the window at a fixed rate' : 'over the whole burst'
    if (Number.isFinite(haproxy)) out.push(`${s}: Moat CPU per message forwarded into the broker ${f(moat)} µs, HAProxy ${f(haproxy)} µs${Number.isFinite(pipe) ? `, node-pipe ${f(pipe)} µs` : ''} (${over}): Moat/HAProxy ${f(moat / haproxy, 3)} (target ≤ 0.5)`)
    const acl = medianOf(s, 'moat-acl5000', 'proxyCpuUsPerForwarded')
    const rate = (t: TargetKind): number => medianOf(s, t, 'brokerReceivedPerSecond')
    if (Number.isFinite(acl)) out.push(`${s}: Moat CPU per message forwarded, 5,000 ACL rules ${f(acl)} µs against 50 rules ${f(moat)} µs: ${f((acl / moat - 1) * 100, 1)} % (capacity ∝ 1 / CPU per message; target < 5 %); read by the broker ${fmt(rate('moat-acl5000'), 0)} against ${fmt(rate('moat'), 0)} msg/s`)
  }
  const c = measurements.find((m) => m.scenario.startsWith('connect '))?.scenario
  if (c !== undefined) {
    const direct50 = medianOf(c, 'direct', 'p50Ms')
    const direct99 = medianOf(c, 'direct', 'p99Ms')
    for (const t of ['haproxy', 'node-pipe', 'moat'] as TargetKind[]) {
      const p50 = medianOf(c, t, 'p50Ms')
      if (!Number.isFinite(p50) || !Number.isFinite(direct50)) continue
      out.push(`${c}: ${t} adds ${f(p50 - direct50, 3)} ms at p50, ${f(medianOf(c, t, 'p99Ms') - direct99, 3)} ms at p99 to a CONNECT${t === 'moat' ? ' (file auth, cache warm, JIT settled; target < 1 ms)' : ''}; its CPU per CONNECT ${f(medianOf(c, t, 'proxyCpuMsPerConnect'), 3)} ms`)
    }
  }
  return out
}
