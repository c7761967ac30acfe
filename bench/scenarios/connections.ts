/**
 * Connections: N clients connect with user name and password at up to `rate` per second, with at
 * most `inFlight` CONNECTs outstanding (opened, no CONNACK yet), then stay idle (keepalive 0: no
 * PINGREQ). The cap keeps the load generator from flooding the listen backlogs (a SYN dropped
 * there is retried after 1 s, 3 s, …: seconds that measure the harness, not the target): when the
 * target answers more slowly than `rate`, the achieved rate drops instead, and is reported.
 * Measured: the achieved rate (connected / time from the first open to the last CONNACK),
 * CONNECT→CONNACK time under that load (p50/p99, from opening the TCP connection; the auth cache
 * is warm after the first CONNECT per user), and resident memory per idle connection of proxy and
 * broker (RSS after minus RSS before, over N); then, with the idle connections up, `probes`
 * CONNECTs one at a time (p50/p99). Clients come from `sources` 127.0.0.x addresses in turn, so
 * that no address runs short of ports (binding a source address allocates its port at bind time,
 * among the ports of that address). Each call takes the next block of `sources` addresses (within
 * 127.0.0.10 … 127.0.0.255; 24 blocks of 8): the ports of the previous runs' connections sit in TIME_WAIT
 * for a minute, and binding among an address's ports mostly in TIME_WAIT made the kernel search
 * for a free one for every connection (the load generator at 100 % of its core, the third run of
 * a target at a tenth of the rate of the first).
 *
 * The same function is the concurrent-connect scenario (2,000 clients, 100 in flight, no rate
 * cap): `warmupRounds` CONNECT rounds first at the same concurrency (auth cache, JIT), and the
 * CPU per connection of proxy and broker over the opening. TLS targets: every connection is a
 * TLS handshake; with `resume`, client i offers the session its warm-up round i received.
 */
import { cpuSecondsPrecise as cpuSeconds, sleep } from '../processes.js'
import { Client, connectRounds, resumed, sourceBlock } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, rssBytes, type RunningTarget } from '../targets.js'
import { percentile } from './latency.js'

export interface ConnectionsOptions {
  readonly count: number
  /** New connections per second, at most (Infinity: only `inFlight` holds them back). */
  readonly rate: number
  /** CONNECTs outstanding at most. */
  readonly inFlight: number
  /** Source addresses 127.0.0.10 … (in turn). */
  readonly sources: number
  /** Sequential CONNECTs measured after the idle ones are up. */
  readonly probes: number
  /** CONNECT rounds (opened and closed, `inFlight` at a time) before the measured ones; 0: none. */
  readonly warmupRounds?: number
  /** TLS targets: client i offers the session of warm-up round i (needs warmupRounds ≥ count). */
  readonly resume?: boolean
}

export interface ConnectionsResult {
  readonly requested: number
  readonly connected: number
  readonly failed: number
  /** Connections per second achieved (connected / time from the first open to the last CONNACK). */
  readonly achievedRate: number
  /** Share of one core each used while the connections were opened (who was the bottleneck): the load generator (this process), the proxy (null when direct), the broker. */
  readonly loadgenCpuShare: number
  readonly proxyCpuShare: number | null
  readonly brokerCpuShare: number
  readonly connectP50Ms: number
  readonly connectP99Ms: number
  /** One CONNECT at a time once the idle connections are up (auth cache warm): the cost of a CONNECT without queueing. */
  readonly probeP50Ms: number
  readonly probeP99Ms: number
  /** Bytes of RSS per idle connection; proxy null when direct. */
  readonly proxyBytesPerConnection: number | null
  readonly brokerBytesPerConnection: number
  /** CPU milliseconds per connection opened (first open to last CONNACK): the proxy's (null when direct), the broker's. */
  readonly proxyCpuMsPerConnection: number | null
  readonly brokerCpuMsPerConnection: number
  /** TLS: share of the connections that resumed a session (null for plain targets). */
  readonly resumedShare: number | null
}

export async function connections(target: RunningTarget, o: ConnectionsOptions, runId: string): Promise<ConnectionsResult> {
  const sessions: Array<Buffer | undefined> | undefined = o.resume === true ? new Array<Buffer | undefined>(o.count) : undefined
  if ((o.warmupRounds ?? 0) > 0) {
    const refused = await connectRounds(target.endpoint, o.warmupRounds!, o.inFlight, (i) => ({ clientId: `cw-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD }), sessions)
    if (refused > 0) console.error(`connections ${target.kind}: ${refused} warm-up CONNECTs refused`)
    await sleep(1000)
  }
  const proxyRss0 = target.proxyPid === null ? 0 : rssBytes(target.proxyPid)
  const brokerRss0 = rssBytes(target.brokerPid)
  const clients: Client[] = []
  const times = new Float64Array(o.count)
  let connected = 0
  let failed = 0
  const pending: Promise<void>[] = []
  const ownCpu0 = process.cpuUsage()
  const proxyCpu0 = target.proxyPid === null ? 0 : cpuSeconds(target.proxyPid)
  const brokerCpu0 = cpuSeconds(target.brokerPid)
  const t0 = performance.now()
  let lastAnswer = t0
  const perMs = o.rate / 1000
  const firstSource = sourceBlock(o.sources)
  let opened = 0
  let outstanding = 0
  while (opened < o.count) {
    const due = Number.isFinite(perMs) ? Math.min(o.count, Math.floor((performance.now() - t0) * perMs) + 1) : o.count
    for (; opened < due && outstanding < o.inFlight; opened++) {
      const i = opened
      const start = performance.now()
      const c = new Client(target.endpoint, `127.0.0.${firstSource + (i % o.sources)}`, sessions?.[i])
      clients.push(c)
      outstanding++
      pending.push(c.connect({ clientId: `idle-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD }).then((code) => {
        outstanding--
        lastAnswer = performance.now()
        if (code === 0) times[connected++] = lastAnswer - start
        else failed++
      }))
    }
    await sleep(1)
  }
  await Promise.all(pending)
  const openSeconds = (performance.now() - t0) / 1000
  const ownCpu = process.cpuUsage(ownCpu0)
  const loadgenCpuShare = (ownCpu.user + ownCpu.system) / 1e6 / openSeconds
  const proxyCpu = target.proxyPid === null ? null : cpuSeconds(target.proxyPid) - proxyCpu0
  const brokerCpu = cpuSeconds(target.brokerPid) - brokerCpu0
  const proxyCpuShare = proxyCpu === null ? null : proxyCpu / openSeconds
  const brokerCpuShare = brokerCpu / openSeconds
  const resumedCount = clients.filter((c) => resumed(c.socket)).length
  const achievedRate = connected / ((lastAnswer - t0) / 1000)
  await sleep(2000) // let both processes settle (buffers, GC)
  const proxyRss = target.proxyPid === null ? 0 : rssBytes(target.proxyPid)
  const brokerRss = rssBytes(target.brokerPid)
  const alive = clients.filter((c) => !c.closed).length
  const probes = new Float64Array(o.probes)
  let probed = 0
  for (let i = 0; i < o.probes; i++) {
    const start = performance.now()
    const c = new Client(target.endpoint, '127.0.0.9')
    const code = await c.connect({ clientId: `probe-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD })
    if (code === 0) probes[probed++] = performance.now() - start
    c.close()
  }
  const probeSorted = probes.slice(0, probed).sort()
  for (const c of clients) c.close()
  await sleep(500)
  const sorted = times.slice(0, connected).sort()
  return {
    requested: o.count,
    connected: Math.min(connected, alive),
    failed,
    achievedRate,
    loadgenCpuShare,
    proxyCpuShare,
    brokerCpuShare,
    connectP50Ms: percentile(sorted, 0.5),
    connectP99Ms: percentile(sorted, 0.99),
    probeP50Ms: percentile(probeSorted, 0.5),
    probeP99Ms: percentile(probeSorted, 0.99),
    proxyBytesPerConnection: target.proxyPid === null || connected === 0 ? null : (proxyRss - proxyRss0) / connected,
    brokerBytesPerConnection: connected === 0 ? 0 : (brokerRss - brokerRss0) / connected,
    proxyCpuMsPerConnection: proxyCpu === null || connected === 0 ? null : (proxyCpu / connected) * 1000,
    brokerCpuMsPerConnection: connected === 0 ? NaN : (brokerCpu / connected) * 1000,
    resumedShare: target.endpoint.tls === undefined ? null : resumedCount / o.count,
  }
}
