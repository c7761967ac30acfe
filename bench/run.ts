/**
 * The end-to-end benchmark: the same scenarios against Mosquitto reached directly, HAProxy (TCP
 * mode) in front of it, a naive Node pipe proxy (fan-in-rate, latency, connect), and Moat with a
 * realistic policy in front of it (and, for the fan-in scenarios, Moat with 5,000 ACL rules); and,
 * with TLS between the clients and the first hop, Mosquitto's own TLS listener, HAProxy and a bare
 * Node pass-through terminating TLS, and Moat's mqtts listener. Broker and proxy share core 0,
 * this process (the load generator) runs on core 1. Each scenario runs `--runs` times per target
 * (targets interleaved, each started fresh); a table per transport shows medians and the ratio to
 * the direct broker, then the issue's targets; the JSON keeps every run.
 *
 *   npm run bench -- [--quick] [--only fan-in,fan-in-rate,latency,loaded-latency,connect,concurrent,paired,connections,storm,storm-cold]
 *                    [--transport plain,tls] [--targets direct,haproxy,node-pipe,moat,direct-tls,haproxy-tls,node-tls-pipe,moat-tls]
 *                    [--runs 3] [--out bench/results/<date>.json] [--connections 50000] [--connect-rate 5000]
 *                    [--connect-inflight 100] [--connect-rounds 2000] [--connect-warmup 10000] [--rate 10000]
 *                    [--tls-rate 20000] [--rate-payload 64,1024] [--concurrent-clients 2000]
 *                    [--storm-clients 5000] [--storm-warmup 5000] [--storm-settle 30] [--storm-resume]
 *                    [--sched batch] [--coalescing 0 | WAIT[,ABOVE]] [--malloc jemalloc|libc]
 *                    [--load-rate 25000] (loaded-latency: the latency probe while 50 publishers offer a QoS 0 load)
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { issueTargets } from './issue-targets.js'
import { negotiatedLines, table, type Measurement, type ScenarioKind } from './report.js'
import { connect, DEFAULT_WARMUP_ROUNDS, type ConnectResult } from './scenarios/connect.js'
import { connections, type ConnectionsResult } from './scenarios/connections.js'
import { pairedConnect, type PairedResult } from './scenarios/paired.js'
import { fanIn, type FanInResult } from './scenarios/fan-in.js'
import { latency, type LatencyResult } from './scenarios/latency.js'
import { storm, type StormResult } from './scenarios/storm.js'
import { jemallocAvailable, kindFor, nofileLimits, PLAIN_KINDS, moatCounters, raiseOwnNofile, startTarget, TLS_KINDS, transportOf, type NodeMalloc, type Placement, type RunningTarget, type TargetKind, type Transport } from './targets.js'

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
    'tls-rate': { type: 'string', default: '20000' },
    'rate-payload': { type: 'string', default: '64,1024' },
    'concurrent-clients': { type: 'string', default: '2000' },
    'storm-clients': { type: 'string' },
    'storm-warmup': { type: 'string' },
    'storm-settle': { type: 'string' },
    'storm-resume': { type: 'boolean', default: false },
    transport: { type: 'string' },
    targets: { type: 'string' },
    sched: { type: 'string', default: 'normal' },
    coalescing: { type: 'string' },
    malloc: { type: 'string' },
    'load-rate': { type: 'string', default: '25000' },
  },
})
if (values.sched !== 'normal' && values.sched !== 'batch') throw new Error(`--sched: normal or batch, not ${values.sched}`)
if (values.malloc !== undefined && values.malloc !== 'jemalloc' && values.malloc !== 'libc') throw new Error(`--malloc: jemalloc or libc, not ${values.malloc}`)
// glibc's malloc, as Moat is shipped; --malloc jemalloc: the preload of docs/tuning.md.
const nodeMalloc: NodeMalloc = values.malloc ?? 'libc'
if (nodeMalloc === 'jemalloc' && !jemallocAvailable()) throw new Error('--malloc jemalloc: libjemalloc.so.2 cannot be preloaded here (Debian: apt-get install libjemalloc2)')
const QUICK = values.quick
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3))
const SECONDS = QUICK ? 2 : 5
/** The fixed-rate window: long, since its CPU per message decides the 5,000-rule target (a few % apart). */
const RATE_SECONDS = QUICK ? 3 : 10
const WARMUP = QUICK ? 1 : 2
/** The paired scenario's windows: how many, and how long each (its CPU figures are per window). */
const PAIR_WINDOWS = QUICK ? 3 : 5
const PAIR_SECONDS = QUICK ? 2 : 4
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
const SCENARIOS = ['fan-in', 'fan-in-rate', 'latency', 'loaded-latency', 'connect', 'concurrent', 'paired', 'connections', 'storm', 'storm-cold']
const ONLY = new Set(values.only?.split(',') ?? SCENARIOS)
for (const o of ONLY) if (!SCENARIOS.includes(o)) throw new Error(`--only: ${o} is not a scenario (${SCENARIOS.join(', ')})`)
/**
 * Transports: --transport, else those of the kinds named in --targets, else both. A plain kind in
 * --targets also names its TLS counterpart when TLS runs and no TLS kind is named (and back).
 */
const LISTED = values.targets?.split(',') as TargetKind[] | undefined
for (const k of LISTED ?? []) if (![...PLAIN_KINDS, ...TLS_KINDS].includes(k)) throw new Error(`--targets: ${k} is not a target (${[...PLAIN_KINDS, ...TLS_KINDS].join(', ')})`)
const TRANSPORTS = new Set<Transport>((values.transport?.split(',') as Transport[] | undefined) ?? (LISTED === undefined ? ['plain', 'tls'] : LISTED.map(transportOf)))
for (const t of TRANSPORTS) if (t !== 'plain' && t !== 'tls') throw new Error(`--transport: plain, tls or both, not ${String(t)}`)
/**
 * Targets per scenario. By default: node-pipe (cheap) where it is a useful floor (fixed rate,
 * latency, CONNECT one at a time and concurrent), moat-acl5000 in both plain fan-in scenarios (the cost of a large policy); with
 * TLS the bare Node pass-through everywhere but in the storms (the floor of any Node proxy that
 * terminates TLS). With --targets, exactly those (plus moat-acl5000 in the fan-in scenarios when
 * moat is listed).
 */
const BASE: TargetKind[] = ['direct', 'haproxy', 'moat']
const WITH_PIPE: TargetKind[] = ['direct', 'haproxy', 'node-pipe', 'moat']
function targetsFor(transport: Transport, defaults: TargetKind[], withAcl: boolean, tlsDefaults = WITH_PIPE): TargetKind[] {
  let list: TargetKind[]
  if (LISTED === undefined) list = transport === 'tls' ? tlsDefaults : defaults
  else list = LISTED.some((k) => transportOf(k) === transport) ? LISTED.filter((k) => transportOf(k) === transport) : LISTED
  list = [...new Set(list.map((k) => kindFor(k, transport)).filter((k): k is TargetKind => k !== null))]
  return withAcl && transport === 'plain' && list.includes('moat') && !list.includes('moat-acl5000') ? [...list, 'moat-acl5000'] : list
}
/** The scenario's name in the table and JSON: TLS ones start with "tls". */
const named = (transport: Transport, name: string): string => (transport === 'tls' ? `tls ${name}` : name)
const day = new Date().toISOString().replace(/:\d\d\.\d+Z$/, '').replace(/:/g, '')
const OUT = values.out ?? `bench/results/${day}.json`

// File descriptors: a proxy holds two per client (client + broker side). Past the hard limit
// (prlimit cannot go beyond it without CAP_SYS_RESOURCE), the connection count is lowered.
const wanted = Number(values.connections ?? (QUICK ? 2000 : 50_000))
const stormWanted = Number(values['storm-clients'] ?? (QUICK ? 2000 : 5000))
const concurrentWanted = Number(values['concurrent-clients'])
const mostWanted = Math.max(wanted, stormWanted, concurrentWanted)
// This process holds one descriptor per client: raise its own limit first (root may go past the hard limit).
if (nofileLimits()[0] < mostWanted + 1000) raiseOwnNofile(Math.max(2 * mostWanted + 1000, nofileLimits()[0]))
const [ownSoft, hard] = nofileLimits()
/** The most clients the limits allow at once: a proxy holds 2 descriptors per client, this process 1. */
const fdCap = Math.min(Math.floor((hard - 1000) / 2), ownSoft - 1000)
const connectionCount = Math.min(wanted, fdCap)
if (ONLY.has('connections') && connectionCount < wanted) {
  console.error(`open-file limits (this process ${ownSoft}, hard ${hard}): connections scenario lowered from ${wanted} to ${connectionCount} (a proxy needs 2 fds per client, the load generator 1)`)
}
// The storm: as many clients as the limits allow, up to 5,000 (--storm-clients).
const stormClients = Math.min(stormWanted, fdCap)
const concurrentClients = Math.min(concurrentWanted, fdCap)
if ((ONLY.has('storm') || ONLY.has('storm-cold')) && stormClients < stormWanted) console.error(`open-file limits: storm lowered from ${stormWanted} to ${stormClients} clients`)
const placement: Placement = {
  serverCores: '0',
  nofile: Math.max(2 * Math.max(connectionCount, stormClients, concurrentClients) + 1000, 4096),
  // ~20,000 connections per source address towards the one broker port; below that none is set
  // (the proxies' default configuration; measured 2026-11-25, one source address made no
  // difference to the connect figures). BENCH_UPSTREAM_SOURCES=N forces N (0: none).
  upstreamSources: process.env.BENCH_UPSTREAM_SOURCES !== undefined ? Number(process.env.BENCH_UPSTREAM_SOURCES) : connectionCount > 20_000 ? Math.ceil(connectionCount / 20_000) : 0,
  // --sched batch: every proxy (HAProxy, node-pipe, Moat; never the broker) under SCHED_BATCH.
  proxyScheduling: values.sched,
  // --coalescing 0: Moat without read coalescing; --coalescing 300us,1/s: wait at any rate; absent: Moat's default.
  moatCoalescing: values.coalescing ?? null,
  nodeMalloc,
}

// Pin the load generator (every thread of this process) to core 1.
const nproc = cpus().length
if (nproc >= 2) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
else console.error('one core only: nothing is pinned; figures mix load generator and servers')

const measurements: Measurement[] = []
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'))

async function measure<R>(kind: ScenarioKind, transport: Transport, scenario: string, targets: readonly TargetKind[], body: (t: Awaited<ReturnType<typeof startTarget>>, runId: string) => Promise<R>): Promise<void> {
  const byTarget = new Map<TargetKind, R[]>(targets.map((t) => [t, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const kind of targets) {
      const target = await startTarget(kind, dir, placement)
      try {
        let result = await body(target, `${run}`)
        // Moat: how many turns of its event loop waited (coalescing) and the connections it refused, over the run, warm-up included.
        if (target.adminPort !== null) result = { ...result, ...await moatCounters(target.adminPort) }
        byTarget.get(kind)!.push(result)
        process.stderr.write(`${scenario} ${kind} run ${run + 1}/${RUNS}: ${JSON.stringify(result)}\n`)
      } finally {
        await target.stop()
      }
    }
  }
  for (const [target, runs] of byTarget) measurements.push({ scenario, kind, transport, target, runs })
}

/** Moat and the bare Node pass-through started together and loaded at once (scenarios/paired.ts); runs as `measure` does. */
async function measurePair<R>(transport: Transport, scenario: string, pair: readonly [TargetKind, TargetKind], body: (a: RunningTarget, b: RunningTarget, runId: string) => Promise<[R, R]>): Promise<void> {
  const runs: [R[], R[]] = [[], []]
  for (let run = 0; run < RUNS; run++) {
    const a = await startTarget(pair[0], dir, placement)
    let b: RunningTarget | null = null
    try {
      b = await startTarget(pair[1], dir, placement)
      const results = await body(a, b, `${run}`)
      for (let i = 0; i < 2; i++) {
        runs[i]!.push(results[i]!)
        process.stderr.write(`${scenario} ${pair[i]} run ${run + 1}/${RUNS}: ${JSON.stringify(results[i])}\n`)
      }
    } finally {
      await b?.stop()
      await a.stop()
    }
  }
  for (let i = 0; i < 2; i++) measurements.push({ scenario, kind: 'paired', transport, target: pair[i]!, runs: runs[i]! })
}

const transports = (['plain', 'tls'] as const).filter((t) => TRANSPORTS.has(t))
const ratePayloads = values['rate-payload'].split(',').map(Number)
const payloadName = (bytes: number): string => (bytes % 1024 === 0 ? `${bytes / 1024}KiB` : `${bytes}B`)

try {
  for (const tr of transports) {
    if (!ONLY.has('fan-in')) break
    const b64 = QUICK ? 4000 : 10_000
    const b1k = QUICK ? 2000 : 5000
    await measure<FanInResult>('fan-in', tr, named(tr, `fan-in qos0 64B burst ${b64 * 50 / 1000}k`), targetsFor(tr, BASE, true), (t, r) => fanIn(t, { publishers: 50, payloadBytes: 64, qos: 0, rate: 0, burst: b64, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f64-${r}`))
    await measure<FanInResult>('fan-in', tr, named(tr, `fan-in qos0 1KiB burst ${b1k * 50 / 1000}k`), targetsFor(tr, BASE, false), (t, r) => fanIn(t, { publishers: 50, payloadBytes: 1024, qos: 0, rate: 0, burst: b1k, seconds: SECONDS, warmupSeconds: WARMUP, batch: 16 }, `f1k-${r}`))
  }
  for (const tr of transports) {
    if (!ONLY.has('fan-in-rate')) break
    // Plain at --rate (10,000/s), TLS at --tls-rate (20,000/s: the issue's case); each payload of --rate-payload.
    const rate = Number(tr === 'tls' ? values['tls-rate'] : values.rate)
    for (const bytes of ratePayloads) {
      await measure<FanInResult>('fan-in', tr, named(tr, `fan-in qos1 ${payloadName(bytes)} at ${rate}/s`), targetsFor(tr, WITH_PIPE, bytes === 64), (t, r) => fanIn(t, { publishers: 50, payloadBytes: bytes, qos: 1, rate, burst: 0, seconds: RATE_SECONDS, warmupSeconds: WARMUP, batch: 1 }, `fr${bytes}-${r}`))
    }
  }
  for (const tr of transports) {
    if (!ONLY.has('latency')) break
    await measure<LatencyResult>('latency', tr, named(tr, 'latency qos1 2000/s'), targetsFor(tr, WITH_PIPE, false), (t, r) => latency(t, { rate: 2000, seconds: QUICK ? 3 : 10, warmupSeconds: LATENCY_WARMUP, payloadBytes: 64 }, `l-${r}`))
  }
  if (ONLY.has('loaded-latency') && TRANSPORTS.has('plain')) {
    // The latency probe while 50 publishers offer a steady QoS 0 load through the same proxy: what
    // a message's latency is when the proxy is busy (Moat: with coalescing acting above its rate).
    const load = Number(values['load-rate'])
    const probeSeconds = QUICK ? 3 : 10
    await measure<LatencyResult & { loadDeliveredPerSecond: number; loadProxyCpuUsPerDelivered: number | null }>('latency', 'plain', `latency qos1 2000/s under ${load}/s qos0 load`, targetsFor('plain', BASE, false), async (t, r) => {
      const loadRun = fanIn(t, { publishers: 50, payloadBytes: 64, qos: 0, rate: load, burst: 0, seconds: probeSeconds + 1, warmupSeconds: LATENCY_WARMUP - 1, batch: 1 }, `ll-load-${r}`)
      const probe = await latency(t, { rate: 2000, seconds: probeSeconds, warmupSeconds: LATENCY_WARMUP, payloadBytes: 64 }, `ll-${r}`)
      const loaded = await loadRun
      return { ...probe, loadDeliveredPerSecond: loaded.deliveredPerSecond, loadProxyCpuUsPerDelivered: loaded.proxyCpuUsPerDelivered }
    })
  }
  // 2,000 rounds: a p99 over 500 was the 5th slowest round, set or not by whether one of Moat's
  // (or node-pipe's) rare GC pauses fell in the window: Moat 0.57 / 2.11 / 1.23 ms in three runs
  // of 500, 0.62 / 0.86 / 0.73 in three of 2,000 (2026-12-03).
  const rounds = Number(values['connect-rounds'] ?? (QUICK ? 200 : 2000))
  const warmupRounds = Number(values['connect-warmup'] ?? (QUICK ? 2000 : DEFAULT_WARMUP_ROUNDS))
  const inFlight = Number(values['connect-inflight'])
  for (const tr of transports) {
    if (!ONLY.has('connect')) break
    // TLS: full handshakes, then each round offering the previous round's session (resumption).
    for (const resume of tr === 'tls' ? [false, true] : [false]) {
      await measure<ConnectResult>('connect', tr, named(tr, `connect${resume ? ' resumed' : ''} ${rounds} sequential after ${warmupRounds}`), targetsFor(tr, WITH_PIPE, false), (t, r) => connect(t, { rounds, warmupRounds, resume }, `k-${r}`))
    }
  }
  for (const tr of transports) {
    if (!ONLY.has('concurrent')) break
    // The connections scenario without a rate cap, `inFlight` CONNECTs outstanding, after the connect scenario's warm-up (at the same concurrency).
    const count = concurrentClients
    for (const resume of tr === 'tls' ? [false, true] : [false]) {
      await measure<ConnectionsResult>('concurrent', tr, named(tr, `concurrent connect${resume ? ' resumed' : ''} ${count}, ${inFlight} in flight, after ${warmupRounds}`), targetsFor(tr, WITH_PIPE, false), (t, r) => connections(t, { count, rate: Infinity, inFlight, sources: 8, probes: 0, warmupRounds: Math.max(warmupRounds, resume ? count : 0), resume }, `cc-${r}`))
    }
  }
  for (const tr of transports) {
    if (!ONLY.has('paired')) break
    // Moat against the bare Node pass-through, loaded side by side: their difference, robust to the machine's changes of speed.
    const pair: [TargetKind, TargetKind] = tr === 'tls' ? ['moat-tls', 'node-tls-pipe'] : ['moat', 'node-pipe']
    if (!pair.every((k) => targetsFor(tr, WITH_PIPE, false).includes(k))) continue
    const each = Math.max(1, Math.floor(inFlight / 2))
    for (const resume of tr === 'tls' ? [false, true] : [false]) {
      const name = named(tr, `paired connect${resume ? ' resumed' : ''}, Moat and the pass-through at once, ${each} in flight each, after ${warmupRounds}`)
      await measurePair<PairedResult>(tr, name, pair, (a, b, r) => pairedConnect(a, b, { inFlight: each, warmupRounds, windows: PAIR_WINDOWS, seconds: PAIR_SECONDS, resume }, `pc-${r}`))
    }
  }
  for (const tr of transports) {
    if (!ONLY.has('connections')) break
    const rate = Number(values['connect-rate'] ?? (QUICK ? 2000 : 5000))
    await measure<ConnectionsResult>('connections', tr, named(tr, `connections ${connectionCount} at ≤${rate}/s`), targetsFor(tr, BASE, false), (t, r) => connections(t, { count: connectionCount, rate, inFlight, sources: 8, probes: QUICK ? 100 : 300 }, `c-${r}`))
  }
  const storms = { clients: stormClients, sources: 8, warmupInFlight: inFlight, settleSeconds: Number(values['storm-settle'] ?? (QUICK ? 10 : 30)) }
  const stormWarmup = Number(values['storm-warmup'] ?? (QUICK ? 1000 : 5000))
  for (const tr of transports) {
    if (!ONLY.has('storm')) break
    for (const resume of tr === 'tls' && values['storm-resume'] ? [false, true] : [false]) {
      await measure<StormResult>('storm', tr, named(tr, `storm${resume ? ' resumed' : ''} ${stormClients} clients, warm (after ${Math.max(stormWarmup, resume ? stormClients : 0)})`), targetsFor(tr, BASE, false, BASE), (t, r) => storm(t, { ...storms, warmupRounds: Math.max(stormWarmup, resume ? stormClients : 0), resume }, `s-${r}`))
    }
  }
  for (const tr of transports) {
    if (!ONLY.has('storm-cold')) break
    // Into a target started just before (Moat as after an upgrade; the direct broker for comparison).
    const cold = targetsFor(tr, BASE, false, BASE).filter((k) => k.startsWith('direct') || k.startsWith('moat'))
    await measure<StormResult>('storm', tr, named(tr, `storm ${stormClients} clients, cold (just started)`), cold, (t, r) => storm(t, { ...storms, warmupRounds: 0 }, `sc-${r}`))
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

const cpuModel = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? cpus()[0]?.model ?? '?'
let commit = 'unknown'
try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim() } catch { /* not a checkout */ }
const machine = { nproc, cpu: cpuModel, node: process.version, kernel: release(), loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') }
console.log(`\nMoat benchmark ${new Date().toISOString()} commit ${commit}, ${RUNS} run(s) per target, median${QUICK ? ' (--quick)' : ''}`)
console.log(`machine: ${nproc} × ${cpuModel}, Node ${process.version}, Linux ${machine.kernel}, load average at the end ${machine.loadAverage}`)
if (placement.moatCoalescing != null) console.log(`Moat with coalescing: ${placement.moatCoalescing} (--coalescing)`)
if (nodeMalloc === 'jemalloc') console.log('Node proxies on jemalloc (LD_PRELOAD, background purging; --malloc jemalloc)')
if (placement.proxyScheduling === 'batch') console.log('proxies run under SCHED_BATCH (chrt -b 0): no wakeup preemption of the broker they share core 0 with')
console.log('broker + proxy on core 0, load generator on core 1. Fan-in: "read by the broker" = PUBLISH bytes the broker read from the publishers\' connections,')
console.log('"forwarded into the broker" = PUBLISH bytes written into them by the process at their other end (both kernel counts, ss tcp_info, subscriber\'s connection')
console.log('left out) / frame size; in a burst the two are equal (every buffer empty at both ends). "X CPU s / 1M msgs Y" = CPU seconds (all threads, schedstat) of X /')
console.log('millions of messages Y, both over the whole burst (first publish to the last delivery), or over the window at a fixed rate\n')
for (const tr of transports) {
  const t = table(measurements, tr)
  if (t === '') continue
  if (tr === 'tls') {
    console.log('\nTLS between the clients and the first hop (Mosquitto\'s TLS listener when direct-tls; behind a proxy the broker is plain TCP); certificate ECDSA P-256')
    for (const l of negotiatedLines(measurements)) console.log(`negotiated: ${l}`)
  }
  console.log(`\n${t}`)
}
const summary = issueTargets(measurements)
if (summary.length > 0) console.log(`\nThe issue's targets (medians above):\n${summary.map((l) => `- ${l}`).join('\n')}`)
mkdirSync(dirname(OUT), { recursive: true })

writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), commit, machine, options: { quick: QUICK, runs: RUNS, seconds: SECONDS, connections: connectionCount, stormClients, placement, values }, measurements }, null, 2))
console.log(`\nresults: ${OUT}`)
