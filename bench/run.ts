/**
 * The end-to-end benchmark: the same scenarios against Mosquitto reached directly, HAProxy (TCP
 * mode) in front of it, and Moat with a realistic policy in front of it (and, for fan-in 64 B,
 * Moat with 5,000 ACL rules). Broker and proxy share core 0, this process (the load generator)
 * runs on core 1. Each scenario runs `--runs` times per target (targets interleaved, each started
 * fresh); the table shows medians and the ratio to the direct broker; the JSON keeps every run.
 *
 *   npm run bench -- [--quick] [--only fan-in,fan-in-rate,latency,connections] [--runs 3]
 *                    [--out bench/results/<date>.json] [--connections 50000] [--connect-rate 5000]
 *                    [--rate 10000] [--targets direct,haproxy,moat]
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { connections, type ConnectionsResult } from './scenarios/connections.js'
import { fanIn, type FanInResult } from './scenarios/fan-in.js'
import { latency, type LatencyResult } from './scenarios/latency.js'
import { nofileLimits, raiseOwnNofile, startTarget, type Placement, type TargetKind } from './targets.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    out: { type: 'string' },
    connections: { type: 'string' },
    'connect-rate': { type: 'string' },
    rate: { type: 'string', default: '10000' },
    targets: { type: 'string', default: 'direct,haproxy,moat' },
  },
})
const QUICK = values.quick
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3))
const SECONDS = QUICK ? 2 : 5
const WARMUP = QUICK ? 1 : 2
const ONLY = new Set((values.only ?? 'fan-in,fan-in-rate,latency,connections').split(','))
const TARGETS = values.targets.split(',') as TargetKind[]
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
  // ~20,000 connections per source address towards the one broker port.
  upstreamSources: Math.max(1, Math.ceil(connectionCount / 20_000)),
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
        const result = await body(target, `${run}`)
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

const fanTargets = TARGETS
try {
  if (ONLY.has('fan-in')) {
    const withAcl = TARGETS.includes('moat') ? [...fanTargets, 'moat-acl5000' as TargetKind] : fanTargets
    await measure<FanInResult>('fan-in qos0 64B', withAcl, (t, r) => fanIn(t, { publishers: 50, payloadBytes: 64, qos: 0, rate: 0, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f64-${r}`))
    await measure<FanInResult>('fan-in qos0 1KiB', fanTargets, (t, r) => fanIn(t, { publishers: 50, payloadBytes: 1024, qos: 0, rate: 0, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f1k-${r}`))
  }
  if (ONLY.has('fan-in-rate')) {
    await measure<FanInResult>(`fan-in qos1 64B at ${values.rate}/s`, fanTargets, (t, r) => fanIn(t, { publishers: 50, payloadBytes: 64, qos: 1, rate: Number(values.rate), seconds: SECONDS, warmupSeconds: WARMUP, batch: 1 }, `fr-${r}`))
  }
  if (ONLY.has('latency')) {
    await measure<LatencyResult>('latency qos1 2000/s', fanTargets, (t, r) => latency(t, { rate: 2000, seconds: QUICK ? 3 : 10, warmupSeconds: WARMUP, payloadBytes: 64 }, `l-${r}`))
  }
  if (ONLY.has('connections')) {
    const rate = Number(values['connect-rate'] ?? (QUICK ? 2000 : 5000))
    await measure<ConnectionsResult>(`connections ${connectionCount} at ${rate}/s`, fanTargets, (t, r) => connections(t, { count: connectionCount, rate, probes: QUICK ? 100 : 300 }, `c-${r}`))
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
    rows.push({ label: `${s}: delivered`, scenario: s, key: 'deliveredPerSecond', unit: 'msg/s', digits: 0 })
    // Unpaced, what the publishers wrote is mostly what the kernel buffers absorbed: only in the JSON.
    if (s.includes(' at ')) rows.push({ label: `${s}: sent by publishers`, scenario: s, key: 'sentPerSecond', unit: 'msg/s', digits: 0 })
    rows.push({ label: `${s}: proxy CPU per 1M msgs`, scenario: s, key: 'proxyCpuUsPerMessage', unit: 's', digits: 2 })
    rows.push({ label: `${s}: broker CPU per 1M msgs`, scenario: s, key: 'brokerCpuUsPerMessage', unit: 's', digits: 2 })
  } else if (s.startsWith('latency')) {
    for (const [k, l] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['p999Ms', 'p99.9']] as const) rows.push({ label: `${s}: ${l}`, scenario: s, key: k, unit: 'ms', digits: 3 })
  } else {
    rows.push({ label: `${s}: connected`, scenario: s, key: 'connected', unit: '', digits: 0 })
    rows.push({ label: `${s}: CONNECT→CONNACK p50`, scenario: s, key: 'connectP50Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: CONNECT→CONNACK p99`, scenario: s, key: 'connectP99Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: one CONNECT at a time, p50`, scenario: s, key: 'probeP50Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: one CONNECT at a time, p99`, scenario: s, key: 'probeP99Ms', unit: 'ms', digits: 3 })
    rows.push({ label: `${s}: proxy RSS per connection`, scenario: s, key: 'proxyBytesPerConnection', unit: 'KiB', digits: 2, scale: 1 / 1024 })
    rows.push({ label: `${s}: broker RSS per connection`, scenario: s, key: 'brokerBytesPerConnection', unit: 'KiB', digits: 2, scale: 1 / 1024 })
  }
}
const columns: TargetKind[] = [...new Set(measurements.map((m) => m.target))]
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
console.log('broker + proxy on core 0, load generator on core 1; CPU per 1M msgs = seconds of CPU per million delivered messages\n')
console.log(table)
mkdirSync(dirname(OUT), { recursive: true })
writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), commit, machine, options: { quick: QUICK, runs: RUNS, seconds: SECONDS, connections: connectionCount, placement }, measurements }, null, 2))
console.log(`\nresults: ${OUT}`)
