/**
 * Connections: N clients connect with user name and password at a steady rate, then stay idle
 * (keepalive 0: no PINGREQ). Measured: CONNECT→CONNACK time (p50/p99, from opening the TCP
 * connection; the auth cache is warm after the first CONNECT per user), and resident memory per
 * idle connection of proxy and broker (RSS after minus RSS before, over N); then, with the idle
 * connections up, `probes` CONNECTs one at a time (p50/p99): the CONNECT cost without queueing. Clients come from
 * several 127.0.0.x addresses (one address has ~28,000 ports towards one port).
 */
import { sleep } from '../processes.js'
import { Client, loopbackSource } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, rssBytes, type RunningTarget } from '../targets.js'
import { percentile } from './latency.js'

export interface ConnectionsOptions {
  readonly count: number
  /** New connections per second. */
  readonly rate: number
  /** Sequential CONNECTs measured after the idle ones are up. */
  readonly probes: number
}

export interface ConnectionsResult {
  readonly requested: number
  readonly connected: number
  readonly failed: number
  readonly connectP50Ms: number
  readonly connectP99Ms: number
  /** One CONNECT at a time once the idle connections are up (auth cache warm): the cost of a CONNECT without queueing. */
  readonly probeP50Ms: number
  readonly probeP99Ms: number
  /** Bytes of RSS per idle connection; proxy null when direct. */
  readonly proxyBytesPerConnection: number | null
  readonly brokerBytesPerConnection: number
}

export async function connections(target: RunningTarget, o: ConnectionsOptions, runId: string): Promise<ConnectionsResult> {
  const proxyRss0 = target.proxyPid === null ? 0 : rssBytes(target.proxyPid)
  const brokerRss0 = rssBytes(target.brokerPid)
  const clients: Client[] = []
  const times = new Float64Array(o.count)
  let connected = 0
  let failed = 0
  const pending: Promise<void>[] = []
  const t0 = performance.now()
  const perMs = o.rate / 1000
  let opened = 0
  while (opened < o.count) {
    const due = Math.min(o.count, Math.floor((performance.now() - t0) * perMs) + 1)
    for (; opened < due; opened++) {
      const i = opened
      const start = performance.now()
      const c = new Client(target.endpoint, loopbackSource(i, 10))
      clients.push(c)
      pending.push(c.connect({ clientId: `idle-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD }).then((code) => {
        if (code === 0) times[connected++] = performance.now() - start
        else failed++
      }))
    }
    await sleep(5)
  }
  await Promise.all(pending)
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
    connectP50Ms: percentile(sorted, 0.5),
    connectP99Ms: percentile(sorted, 0.99),
    probeP50Ms: percentile(probeSorted, 0.5),
    probeP99Ms: percentile(probeSorted, 0.99),
    proxyBytesPerConnection: target.proxyPid === null || connected === 0 ? null : (proxyRss - proxyRss0) / connected,
    brokerBytesPerConnection: connected === 0 ? 0 : (brokerRss - brokerRss0) / connected,
  }
}
