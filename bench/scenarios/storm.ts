/**
 * Reconnect storm: `clients` clients connect at once, as after a broker restart, each with user
 * name and password (TLS targets: each a TLS handshake), from `sources` 127.0.0.x addresses in
 * turn. Warm: after `warmupRounds` CONNECT rounds (`warmupInFlight` at a time: auth cache, JIT,
 * pools), as a proxy that has been running a while; cold (`warmupRounds` 0): into a target started
 * just before, as after an upgrade. Every client is opened in one loop (its CONNECT written at
 * once, sent when the connection is up), nothing holds them back: a connection the listen queue
 * cannot take is dropped by the kernel and retried by the client a second later (then 3 s, 7 s),
 * so the time to connect everyone moves in steps of seconds with how fast the target accepts. How
 * many clients had to retry is counted from their sockets' own counters (`ss`, `retrans`).
 *
 * Measured: the time from the first open until every client has its CONNACK (0), CONNACK p50/p99
 * (each from its own open), CPU per connection of proxy and broker over that time, the share of
 * core 1 the load generator used (near 100 %, it is what limits), the proxy's RSS before the
 * storm, its peak from the storm's start until the end of the settling time (VmHWM, reset just
 * before through /proc/PID/clear_refs, and VmRSS polled every 10 ms), and its RSS `settleSeconds`
 * after every client closed (DISCONNECT).
 */
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpuSecondsPrecise as cpuSeconds, sleep } from '../processes.js'
import { Client, connectFrame, connectRounds, resumed, sourceBlock } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, rssBytes, type RunningTarget } from '../targets.js'
import { percentile } from './latency.js'

export interface StormOptions {
  readonly clients: number
  /** Source addresses 127.0.0.x, in turn. */
  readonly sources: number
  /** CONNECT rounds before the storm; 0: cold. */
  readonly warmupRounds: number
  readonly warmupInFlight: number
  /** Seconds after every client closed before the proxy's RSS is read again. */
  readonly settleSeconds: number
  /** TLS: client i offers the session its warm-up round i received (cold: nothing to offer). */
  readonly resume?: boolean
}

export interface StormResult {
  readonly clients: number
  readonly connected: number
  readonly failed: number
  /** First open until the last CONNACK 0. */
  readonly allConnectedMs: number
  /** How long the load generator's loop took to open them all. */
  readonly openLoopMs: number
  readonly connackP50Ms: number
  readonly connackP99Ms: number
  readonly connackMaxMs: number
  /** CPU milliseconds per connection over the storm: the proxy's (null when direct), the broker's. */
  readonly proxyCpuMsPerConnection: number | null
  readonly brokerCpuMsPerConnection: number
  /** The load generator's CPU milliseconds per connection (a TLS client handshake costs it about as much as a Node server's). */
  readonly loadgenCpuMsPerConnection: number
  /** Share of one core used over the storm. */
  readonly loadgenCpuShare: number
  readonly proxyCpuShare: number | null
  readonly brokerCpuShare: number
  /** The proxy's resident memory, bytes (null when direct): before, peak during, `settleSeconds` after all closed; after / before. */
  readonly proxyRssBefore: number | null
  readonly proxyRssPeak: number | null
  readonly proxyRssAfter: number | null
  readonly proxyRssAfterRatio: number | null
  readonly settleSeconds: number
  /** Clients whose connection had to be retried (a retransmission: a SYN, or a handshake the full listen queue dropped). */
  readonly retriedClients: number
  /** TLS: share of the clients that resumed a session (null for plain targets). */
  readonly resumedShare: number | null
  /** Why the clients that did not connect did not, counted: the socket's error code (or "closed"), "CONNACK n", and for TLS whether the handshake had completed. */
  readonly failureCauses: string
}

/** How long the storm may take before the clients still waiting count as failed. */
const STORM_LIMIT_MS = 120_000

export async function storm(target: RunningTarget, o: StormOptions, runId: string): Promise<StormResult> {
  const sessions = o.resume === true ? new Array<Buffer | undefined>(o.clients) : undefined
  if (o.warmupRounds > 0) {
    const refused = await connectRounds(target.endpoint, o.warmupRounds, o.warmupInFlight, (i) => ({ clientId: `sw-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD }), sessions)
    if (refused > 0) console.error(`storm ${target.kind}: ${refused} warm-up CONNECTs refused`)
    await sleep(2000)
  }
  const frames = Array.from({ length: o.clients }, (_, i) => connectFrame({ clientId: `storm-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD }))
  const pid = target.proxyPid
  const rssBefore = pid === null ? null : rssBytes(pid)
  const peak = pid === null ? null : new PeakRss(pid)
  const first = sourceBlock(o.sources)
  const clients: Client[] = []
  const times = new Float64Array(o.clients)
  /** Each client's CONNACK code (-1: closed first; undefined: no answer yet). */
  const codes = new Array<number | undefined>(o.clients)
  let connected = 0
  let failed = 0
  const proxyCpu0 = pid === null ? 0 : cpuSeconds(pid)
  const brokerCpu0 = cpuSeconds(target.brokerPid)
  const ownCpu0 = process.cpuUsage()
  const t0 = performance.now()
  let last = t0
  const answers: Array<Promise<void>> = []
  for (let i = 0; i < o.clients; i++) {
    const start = performance.now()
    const c = new Client(target.endpoint, `127.0.0.${first + (i % o.sources)}`, sessions?.[i])
    clients.push(c)
    answers.push(c.connect(frames[i]!).then((code) => {
      const now = performance.now()
      codes[i] = code
      if (code !== 0) return void failed++
      times[connected++] = now - start
      last = now
    }))
  }
  const openLoopMs = performance.now() - t0
  let timer: NodeJS.Timeout | undefined
  await Promise.race([Promise.all(answers), new Promise((r) => { timer = setTimeout(r, STORM_LIMIT_MS) })])
  clearTimeout(timer)
  const seconds = (last - t0) / 1000
  const ownCpu = process.cpuUsage(ownCpu0)
  const proxyCpu = pid === null ? null : cpuSeconds(pid) - proxyCpu0
  const brokerCpu = cpuSeconds(target.brokerPid) - brokerCpu0
  const retried = await retriedClients(target.endpoint.port, first, o.sources)
  const resumedCount = clients.filter((c) => resumed(c.socket)).length
  const causes = new Map<string, number>()
  clients.forEach((c, i) => {
    if (codes[i] === 0) return
    const cause = codes[i] === undefined ? 'no answer' : codes[i]! > 0 ? `CONNACK ${codes[i]}` : `${c.error ?? 'closed'}${target.endpoint.tls !== undefined && !c.secured ? ' in the TLS handshake' : ''}`
    causes.set(cause, (causes.get(cause) ?? 0) + 1)
  })
  if (connected + failed < o.clients) console.error(`storm ${target.kind}: ${o.clients - connected - failed} clients without a CONNACK after ${STORM_LIMIT_MS / 1000} s`)
  await Promise.all(clients.map((c) => c.disconnect()))
  let rssAfter: number | null = null
  if (pid !== null) {
    await sleep(o.settleSeconds * 1000)
    rssAfter = rssBytes(pid)
  }
  const rssPeak = peak?.stop() ?? null
  const sorted = times.slice(0, connected).sort()
  return {
    clients: o.clients,
    connected,
    failed: o.clients - connected,
    allConnectedMs: connected === o.clients ? last - t0 : NaN,
    openLoopMs,
    connackP50Ms: percentile(sorted, 0.5),
    connackP99Ms: percentile(sorted, 0.99),
    connackMaxMs: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    proxyCpuMsPerConnection: proxyCpu === null || connected === 0 ? null : (proxyCpu / connected) * 1000,
    brokerCpuMsPerConnection: connected === 0 ? NaN : (brokerCpu / connected) * 1000,
    loadgenCpuMsPerConnection: connected === 0 ? NaN : (ownCpu.user + ownCpu.system) / 1000 / connected,
    loadgenCpuShare: (ownCpu.user + ownCpu.system) / 1e6 / seconds,
    proxyCpuShare: proxyCpu === null ? null : proxyCpu / seconds,
    brokerCpuShare: brokerCpu / seconds,
    proxyRssBefore: rssBefore,
    proxyRssPeak: rssPeak,
    proxyRssAfter: rssAfter,
    proxyRssAfterRatio: rssAfter === null || rssBefore === null ? null : rssAfter / rssBefore,
    settleSeconds: o.settleSeconds,
    retriedClients: retried,
    resumedShare: target.endpoint.tls === undefined ? null : resumedCount / o.clients,
    failureCauses: [...causes].map(([cause, n]) => `${cause} ${n}`).join(', '),
  }
}

/** A process's peak resident memory from now on: VmHWM after resetting it (clear_refs 5), and VmRSS polled every 10 ms. */
class PeakRss {
  private polled: number
  private readonly timer: NodeJS.Timeout
  private readonly reset: boolean

  constructor(private readonly pid: number) {
    this.polled = rssBytes(pid)
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5')
      this.reset = true
    } catch {
      this.reset = false // not allowed: the polled figure only
    }
    this.timer = setInterval(() => { this.polled = Math.max(this.polled, rssBytes(pid)) }, 10)
  }

  stop(): number {
    clearInterval(this.timer)
    if (!this.reset) return this.polled
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))
    return Math.max(this.polled, m === null ? 0 : Number(m[1]) * 1024)
  }
}

/**
 * How many of the established connections to `port` from 127.0.0.first … first+sources-1 had a
 * retransmission (`ss -ti`: retrans:CURRENT/TOTAL; a SYN the full listen queue dropped counts).
 */
function retriedClients(port: number, first: number, sources: number): Promise<number> {
  return new Promise((resolve) => {
    execFile('ss', ['-tinH', 'state', 'established', `( dport = :${port} )`], { maxBuffer: 256 << 20 }, (err, out) => {
      if (err) return resolve(NaN)
      const lines = out.split('\n')
      let retried = 0
      for (let i = 0; i + 1 < lines.length; i++) {
        const local = /^\s*\d+\s+\d+\s+127\.0\.0\.(\d+):/.exec(lines[i]!)
        if (local === null) continue
        const info = lines[++i]!
        const x = Number(local[1])
        if (x < first || x >= first + sources) continue
        const m = /retrans:\d+\/(\d+)/.exec(info)
        if (m !== null && Number(m[1]) > 0) retried++
      }
      resolve(retried)
    })
  })
}
