/**
 * Load figures, on loopback, Moat in its own process in front of a real Mosquitto; each scenario
 * stops by itself, while a well-behaved client round-trips QoS 1 messages through the same Moat:
 *
 *   npm run bench:load -- [--idle 10000] [--storm-seconds 10] [--storm-workers 50]
 *                         [--slowloris 5000] [--connect-timeout 2s]
 *                         [--sub-clients 200] [--sub-packets 20] [--sub-filters 10]
 *                         [--policy minimal|realistic] [--heap-snapshots DIR]
 *
 * `--policy realistic`: Moat runs the benchmark's realistic policy (bench/targets.ts moatYaml:
 * file auth with a cache, an ACL of 50 rules with placeholders, payload caps, message and byte
 * rates, admin/metrics, upstream source addresses) and the idle clients CONNECT with user name and
 * password; only the idle scenario runs (the others send anonymous CONNECTs). Default: a minimal
 * policy (anonymous clients, no ACL, no rates). `--heap-snapshots DIR`: Moat's V8 heap snapshots
 * before and while holding the idle sessions are written there (idle-before/idle-held.heapsnapshot),
 * to compare in Chrome DevTools (Memory, Comparison) and find what a session holds.
 *
 * Prints, per scenario, one line of figures and the honest client's round trip (p50/p99/max).
 * The same scenarios, CI-sized and with their functional assertions: test/load/*.test.ts.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { closeAll, idleCapacity, connectStorm, describeRoundTrips, MiB, MoatChild, openIdleSessions, ownFileLimit, Prober, slowloris, subscribeStorm, type Credentials } from './load-harness.js'
import { freePort } from './processes.js'
import { BENCH_PASSWORD, benchUser, moatYaml, writePasswd } from './targets.js'

const { values } = parseArgs({
  options: {
    idle: { type: 'string', default: '10000' },
    'storm-seconds': { type: 'string', default: '10' },
    'storm-workers': { type: 'string', default: '50' },
    slowloris: { type: 'string', default: '5000' },
    'connect-timeout': { type: 'string', default: '2s' },
    'sub-clients': { type: 'string', default: '200' },
    'sub-packets': { type: 'string', default: '20' },
    'sub-filters': { type: 'string', default: '10' },
    policy: { type: 'string', default: 'minimal' },
    'heap-snapshots': { type: 'string' },
  },
})
if (values.policy !== 'minimal' && values.policy !== 'realistic') throw new Error(`--policy: minimal or realistic, not ${values.policy}`)
const realistic = values.policy === 'realistic'

const broker = await startMosquitto({ quiet: true, connectionMessages: false })
const credentials = realistic ? (i: number): Credentials => ({ username: benchUser(i), password: BENCH_PASSWORD }) : null
const moat = realistic
  ? await startRealistic(broker.port, Number(values.idle))
  : await MoatChild.start(broker, `{ connectTimeout: ${values['connect-timeout']} }`)
// The realistic ACL allows `bench/#` (and the placeholder rules), not the default `probe/…`.
const prober = await Prober.start(moat.port, credentials === null ? null : credentials(0), realistic ? 'bench/probe' : 'probe')
try {
  await prober.waitForProbes(5)
  const quiet = prober.cut()
  console.log(`moat load bench: node ${process.version}, moat open-file limit ${moat.maxFiles}, ${values.policy} policy`)
  console.log(`baseline: ${describeRoundTrips(quiet)}`)

  // 1. Idle sessions held.
  const wanted = Number(values.idle)
  const count = Math.min(wanted, idleCapacity(moat))
  if (count < wanted) console.log(`idle: the open-file limits (Moat ${moat.maxFiles}, two sockets per session; this process ${ownFileLimit()}) fit ${count} sessions, not ${wanted}`)
  const snapshots = values['heap-snapshots']
  if (snapshots !== undefined) await moat.heapSnapshot(join(snapshots, 'idle-before.heapsnapshot'))
  const before = await moat.snapshot(true)
  prober.cut()
  const started = performance.now()
  const sockets = await openIdleSessions(moat.port, count, 200, credentials)
  const openSeconds = (performance.now() - started) / 1000
  const opening = prober.cut()
  await prober.waitForProbes(40)
  const holding = prober.cut()
  const held = await moat.snapshot(true)
  if (snapshots !== undefined) await moat.heapSnapshot(join(snapshots, 'idle-held.heapsnapshot'))
  console.log(`idle: ${held.sessions - 1} sessions held, opened at ${(count / openSeconds).toFixed(0)}/s; memory per connection ${((held.rss - before.rss) / count / 1024).toFixed(1)} KiB resident, ${((held.heapUsed - before.heapUsed) / count / 1024).toFixed(1)} KiB V8 heap (rss ${(before.rss / MiB).toFixed(0)} → ${(held.rss / MiB).toFixed(0)} MiB)`)
  console.log(`idle: while opening: ${describeRoundTrips(opening)}`)
  console.log(`idle: while holding: ${describeRoundTrips(holding)}`)
  await closeAll(sockets)
  while ((await moat.snapshot()).sessions > 1) await prober.waitForProbes(1)
  if (realistic) console.log('realistic policy: the idle scenario only (the others send anonymous CONNECTs)')
  else await otherScenarios()
} finally {
  await prober.stop()
  await moat.stop()
  await broker.stop()
}

/** Moat with the benchmark's realistic policy (bench/targets.ts), its log discarded. */
async function startRealistic(brokerPort: number, sessions: number): Promise<MoatChild> {
  const adminPort = await freePort()
  const placement = { serverCores: '0', nofile: 65_536, upstreamSources: Math.max(1, Math.ceil(sessions / 20_000)), proxyScheduling: 'normal' as const }
  return MoatChild.startWith((dir) => {
    writePasswd(dir)
    return moatYaml(brokerPort, adminPort, 50, placement)
  }, 65_536, true)
}

async function otherScenarios(): Promise<void> {
  // 2. Connect/disconnect storm (first straight to the broker, for scale).
  const direct = await connectStorm(broker.port, Number(values['storm-seconds']), Number(values['storm-workers']))
  console.log(`connect storm, straight to Mosquitto: ${(direct.cycles / direct.seconds).toFixed(0)} cycles/s`)
  const beforeStorm = await moat.snapshot(true)
  prober.cut()
  const storm = await connectStorm(moat.port, Number(values['storm-seconds']), Number(values['storm-workers']))
  const duringStorm = prober.cut()
  while ((await moat.snapshot()).sessions > 1) await prober.waitForProbes(1)
  const afterStorm = await moat.snapshot(true)
  console.log(`connect storm: ${(storm.cycles / storm.seconds).toFixed(0)} connect/CONNACK/DISCONNECT cycles/s (${storm.cycles} in ${storm.seconds.toFixed(1)} s, ${values['storm-workers']} workers, ${storm.failures} failed); V8 heap after GC ${(beforeStorm.heapUsed / MiB).toFixed(1)} → ${(afterStorm.heapUsed / MiB).toFixed(1)} MiB`)
  console.log(`connect storm: ${describeRoundTrips(duringStorm)}`)

  // 3. Slowloris.
  const slow = Number(values.slowloris)
  prober.cut()
  const loris = await slowloris(moat.port, slow)
  const duringLoris = prober.cut()
  const afterLoris = await moat.snapshot()
  console.log(`slowloris: ${loris.closed} partial CONNECTs, all closed by Moat within ${(loris.lastClosedAfterMs / 1000).toFixed(1)} s of the first (connectTimeout ${values['connect-timeout']}); connect_timeout closes counted: ${afterLoris.closed.connect_timeout}`)
  console.log(`slowloris: ${describeRoundTrips(duringLoris)}`)

  // 4. Subscribe storm (first straight to the broker, for scale).
  const clients = Number(values['sub-clients'])
  const directSubs = await subscribeStorm(broker.port, clients, Number(values['sub-packets']), Number(values['sub-filters']))
  console.log(`subscribe storm, straight to Mosquitto: ${(directSubs.subacks / directSubs.seconds).toFixed(0)} SUBSCRIBE/s`)
  prober.cut()
  const subs = await subscribeStorm(moat.port, clients, Number(values['sub-packets']), Number(values['sub-filters']))
  const duringSubs = prober.cut()
  console.log(`subscribe storm: ${(subs.subacks / subs.seconds).toFixed(0)} SUBSCRIBE/s, ${(subs.filters / subs.seconds).toFixed(0)} filters/s (${subs.subacks} SUBSCRIBEs from ${clients} clients, all answered)`)
  console.log(`subscribe storm: ${describeRoundTrips(duringSubs)}`)
}
