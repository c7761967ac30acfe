/**
 * Fan-in: N publishers, one subscriber on `bench/#`. Two forms:
 *
 * - Burst (QoS 0, `burst` messages per publisher, written as fast as the sockets take them in
 *   pipelined batches of pre-encoded frames): measured from before the first publish until the
 *   broker has read every frame and the subscriber's count stands still. A warm-up burst of a
 *   tenth of the size goes first (JIT, buffers), and is waited out the same way.
 * - Fixed rate (QoS 1, `rate` messages per second in total, each publisher pacing itself and
 *   counting PUBACKs; the subscriber acknowledges): measured over a window after the warm-up.
 *
 * What reached the broker is counted by the kernel on both ends of each of its connections
 * (`broker-sockets.ts`): "forwarded" = PUBLISH bytes written into them by what is at their other
 * end (the proxy; the publishers when direct), "read by the broker" = bytes the broker read from
 * them, each divided by the frame size (the same for every publisher: topics `bench/pub-NNN/load`);
 * the subscriber's connection is left out. The same count for every target, whatever the proxy
 * does; delivered would undercount what a proxy forwarded (a QoS 0 flood is mostly dropped by the
 * broker for its one slow subscriber). CPU time is the run time of all threads of proxy and broker (/proc schedstat).
 *
 * TLS targets: the publishers and the subscriber speak TLS; behind a proxy the broker's
 * connections are plain, so the counts above are exact. Into Mosquitto's own TLS listener
 * (direct-tls) the kernel counts TLS records, not frames: there only deliveries are counted, and a
 * burst ends when the subscriber has them all, or its count stands still.
 *
 * Why a burst rather than a window of an endless flood: kernel socket buffers grow to megabytes
 * (tcp_rmem up to 32 MiB per socket here). In an endless flood the proxy fills the broker's
 * buffers and then waits while the broker reads the backlog; a window of a few seconds catches
 * one proxy filling (many messages, little CPU each: big batches) and another waiting (nothing
 * forwarded), and the broker reading what was forwarded before the window. Over a whole burst,
 * every buffer is empty at both ends: every CPU second counted is matched by the messages it moved,
 * forwarded = read by the broker = what the publishers wrote, and delivered + dropped = read.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { brokerFlow, brokerSockets, type BrokerSockets } from '../broker-sockets.js'
import { cpuSecondsPrecise as cpuSeconds, cpuSplit, sleep } from '../processes.js'
import { openClient, publishFrame, type Client } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, type RunningTarget } from '../targets.js'

export interface FanInOptions {
  readonly publishers: number
  readonly payloadBytes: number
  readonly qos: 0 | 1
  /** Total offered messages per second (window form); 0: a burst. */
  readonly rate: number
  /** Burst form: messages per publisher. */
  readonly burst: number
  /** Window form: the window and the warm-up before it. */
  readonly seconds: number
  readonly warmupSeconds: number
  /** Frames per write in a burst. */
  readonly batch: number
}

export interface FanInResult {
  /** PUBLISH frames the subscriber received per second (burst: over the time until its count stood still). */
  readonly deliveredPerSecond: number
  /** PUBLISH frames written into the broker's connections per second by the proxy (the publishers when direct). Burst: over the time until the broker had read the last frame. */
  readonly forwardedPerSecond: number
  /** PUBLISH frames the broker read from those connections per second (burst: same time). */
  readonly brokerReceivedPerSecond: number
  /** Share of what the broker read that was not delivered (QoS 0: dropped for the slow subscriber), 0 … 1. */
  readonly notDeliveredShare: number
  /** Window form: what the publishers wrote (into Node's streams) per second. */
  readonly sentPerSecond: number | null
  readonly offeredPerSecond: number | null
  /** Proxy CPU microseconds per message it forwarded into the broker, and per message delivered; null when direct. */
  readonly proxyCpuUsPerForwarded: number | null
  readonly proxyCpuUsPerDelivered: number | null
  /**
   * Share of the proxy's CPU spent in the kernel (system calls: reads, writes, epoll), 0 … 1, from
   * 10 ms ticks; null when direct. What a proxy's own code can save is at most the rest.
   */
  readonly proxyKernelShare: number | null
  /** Broker CPU microseconds per message delivered, and per message it read. */
  readonly brokerCpuUsPerDelivered: number
  readonly brokerCpuUsPerReceived: number
  /** Share of core 1 the load generator (this process and the subscriber's) used over the measurement: near 1, it may be what limits. */
  readonly loadgenCpuShare: number
  /** The raw measurement: seconds, messages, CPU seconds, bytes forwarded and read, frame size, broker connections counted (publishers + subscriber). */
  readonly seconds: number
  readonly published: number | null
  readonly delivered: number
  readonly proxyCpuSeconds: number | null
  readonly brokerCpuSeconds: number
  readonly forwardedBytes: number
  readonly brokerReadBytes: number
  readonly publishFrameBytes: number
  readonly brokerConnections: number
}

/** Topic of publisher `i`: the same length for every publisher (up to 1,000), so every PUBLISH frame has the same size. */
export const publisherTopic = (i: number): string => `bench/pub-${String(i).padStart(3, '0')}/load`

/** How long a burst may take to be read by the broker and delivered. */
const BURST_LIMIT_MS = 120_000

export async function fanIn(target: RunningTarget, o: FanInOptions, runId: string): Promise<FanInResult> {
  const tlsArgs = target.endpoint.tls === undefined ? [] : [target.endpoint.tls.caFile]
  const sub = fork(fileURLToPath(new URL('../subscriber.js', import.meta.url)), [target.endpoint.host, String(target.endpoint.port), `sub-${runId}`, benchUser(0), BENCH_PASSWORD, 'bench/+/load', String(o.qos), ...tlsArgs])
  await once(sub, 'message')
  const payload = Buffer.alloc(o.payloadBytes, 7)
  const publishers: Client[] = []
  for (let i = 0; i < o.publishers; i++) {
    publishers.push(await openClient(target.endpoint, { clientId: `pub-${runId}-${i}`, username: benchUser(i + 1), password: BENCH_PASSWORD }))
  }
  const frameBytes = publishFrame(publisherTopic(0), payload, o.qos, 1).length
  try {
    if (o.rate === 0) {
      await burst(target, sub, publishers, o, Math.max(1, Math.ceil(o.burst / 10)), frameBytes, payload)
      const m = await burst(target, sub, publishers, o, o.burst, frameBytes, payload)
      return result(target, o, m.start, m.last, m.readAt, m.deliveredAt, o.burst * o.publishers, null, frameBytes, runId)
    }
    return await paced(target, sub, publishers, o, frameBytes, payload, runId)
  } finally {
    for (const p of publishers) p.close()
    sub.send('stop')
    await sleep(200)
  }
}

/** `start` before the first publish, `last` after everything settled; when the broker had read the last frame, and when the subscriber got its last. */
interface Burst { readonly start: Sample; readonly last: Sample; readonly readAt: number; readonly deliveredAt: number }

/** Each publisher writes `perPublisher` frames as fast as its socket takes them; resolves once the broker has read them all and deliveries stopped. */
async function burst(target: RunningTarget, sub: ChildProcess, publishers: Client[], o: FanInOptions, perPublisher: number, frameBytes: number, payload: Buffer): Promise<Burst> {
  const start = await sample(target, sub)
  await Promise.all(publishers.map((p, i) => new Promise<void>((resolve) => {
    const frame = publishFrame(publisherTopic(i), payload, 0, 1)
    const batch = Buffer.concat(Array.from({ length: o.batch }, () => frame))
    let left = perPublisher
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(o.batch, left)
        left -= n
        const chunk = n === o.batch ? batch : batch.subarray(0, n * frameBytes)
        // The last write's callback: everything is in the kernel.
        if (left === 0) p.socket.write(chunk, () => resolve())
        else if (!p.socket.write(chunk)) return void p.socket.once('drain', pump)
      }
    }
    setImmediate(pump)
  })))
  const total = perPublisher * publishers.length * frameBytes
  let readAt = NaN
  let deliveredAt = start.t
  let last = start
  let still = 0
  const t0 = performance.now()
  while (performance.now() - t0 < BURST_LIMIT_MS) {
    const now = await sample(target, sub)
    if (Number.isNaN(readAt) && (target.brokerTls ? now.publishes - start.publishes >= perPublisher * publishers.length : brokerFlow(start.sockets, now.sockets).readBytes >= total)) readAt = now.t
    if (now.publishes === last.publishes) still++
    else {
      still = 0
      deliveredAt = now.t
    }
    last = now
    if ((!Number.isNaN(readAt) || target.brokerTls) && still >= 4) break
    await sleep(50)
  }
  if (Number.isNaN(readAt)) {
    if (!target.brokerTls) console.error(`fan-in: the broker had not read the whole burst after ${BURST_LIMIT_MS / 1000} s`)
    readAt = last.t
  }
  return { start, last, readAt, deliveredAt }
}

/** Fixed total rate, QoS 1: every 5 ms each publisher sends what is due since the start; a window after the warm-up. */
async function paced(target: RunningTarget, sub: ChildProcess, publishers: Client[], o: FanInOptions, frameBytes: number, payload: Buffer, runId: string): Promise<FanInResult> {
  let stop = false
  let sent = 0
  const timers = publishers.map((p, i) => {
    const template = publishFrame(publisherTopic(i), payload, o.qos, 1)
    const idOffset = template.length - o.payloadBytes - 2
    const perMs = o.rate / o.publishers / 1000
    const t0 = performance.now()
    let due0 = 0
    let id = 0
    return setInterval(() => {
      if (stop) return
      const due = Math.floor((performance.now() - t0) * perMs) - due0
      if (due <= 0) return
      const out = Buffer.allocUnsafe(due * template.length)
      for (let k = 0; k < due; k++) {
        template.copy(out, k * template.length)
        id = id % 65535 + 1
        if (o.qos > 0) out.writeUInt16BE(id, k * template.length + idOffset)
      }
      due0 += due
      sent += due
      p.socket.write(out)
    }, 5)
  })
  await sleep(o.warmupSeconds * 1000)
  const before = await sample(target, sub)
  const sent0 = sent
  await sleep(o.seconds * 1000)
  const after = await sample(target, sub)
  stop = true
  for (const t of timers) clearInterval(t)
  return result(target, o, before, after, after.t, after.t, null, (sent - sent0) / ((after.t - before.t) / 1000), frameBytes, runId)
}

/**
 * The figures from two samples: messages and CPU from `start` to `end`; rates over the time until
 * the broker had read the last frame (`readAt`: forwarded, read) or the subscriber got its last
 * (`deliveredAt`: delivered). In the window form both are `end`.
 */
function result(target: RunningTarget, o: FanInOptions, start: Sample, end: Sample, readAt: number, deliveredAt: number, published: number | null, sentPerSecond: number | null, frameBytes: number, runId: string): FanInResult {
  if (end.closed) console.error(`fan-in ${runId}: the subscriber's connection closed during the run`)
  const flow = brokerFlow(start.sockets, end.sockets)
  const exact = !target.brokerTls // into a TLS listener the kernel counts records, not frames
  if (flow.connections !== o.publishers + 1) console.error(`fan-in ${runId}: ${flow.connections} broker connections counted, ${o.publishers + 1} expected`)
  if (exact && published !== null && flow.readBytes !== published * frameBytes) console.error(`fan-in ${runId}: the broker read ${flow.readBytes} bytes of the publishers', ${published * frameBytes} expected`)
  const forwarded = exact ? flow.writtenBytes / frameBytes : NaN
  const received = exact ? flow.readBytes / frameBytes : NaN
  const delivered = end.publishes - start.publishes
  const cpuProxy = end.proxyCpu - start.proxyCpu
  const cpuBroker = end.brokerCpu - start.brokerCpu
  const proxyUser = end.proxyUser - start.proxyUser
  const proxySystem = end.proxySystem - start.proxySystem
  const perMessage = (cpu: number, n: number): number => (n > 0 ? (cpu / n) * 1e6 : NaN)
  const readSeconds = (readAt - start.t) / 1000
  const seconds = (end.t - start.t) / 1000
  return {
    deliveredPerSecond: delivered / ((deliveredAt - start.t) / 1000),
    forwardedPerSecond: forwarded / readSeconds,
    brokerReceivedPerSecond: received / readSeconds,
    // direct-tls: of what was published (a burst), since what the broker read is not counted in frames there
    notDeliveredShare: exact ? (received > 0 ? Math.max(0, received - delivered) / received : NaN) : published !== null && published > 0 ? Math.max(0, published - delivered) / published : NaN,
    sentPerSecond,
    offeredPerSecond: o.rate === 0 ? null : o.rate,
    proxyCpuUsPerForwarded: target.proxyPid === null ? null : perMessage(cpuProxy, forwarded),
    proxyCpuUsPerDelivered: target.proxyPid === null ? null : perMessage(cpuProxy, delivered),
    proxyKernelShare: target.proxyPid === null || proxyUser + proxySystem === 0 ? null : proxySystem / (proxyUser + proxySystem),
    brokerCpuUsPerDelivered: perMessage(cpuBroker, delivered),
    brokerCpuUsPerReceived: perMessage(cpuBroker, received),
    loadgenCpuShare: (end.loadgenCpu - start.loadgenCpu) / seconds,
    seconds,
    published,
    delivered,
    proxyCpuSeconds: target.proxyPid === null ? null : cpuProxy,
    brokerCpuSeconds: cpuBroker,
    forwardedBytes: flow.writtenBytes,
    brokerReadBytes: flow.readBytes,
    publishFrameBytes: frameBytes,
    brokerConnections: flow.connections,
  }
}

interface Sample {
  readonly t: number
  readonly proxyCpu: number
  readonly brokerCpu: number
  /** The proxy's user and kernel CPU seconds (ticks; 0 when direct). */
  readonly proxyUser: number
  readonly proxySystem: number
  /** CPU seconds of the load generator: this process and the subscriber's. */
  readonly loadgenCpu: number
  readonly publishes: number
  readonly closed: boolean
  readonly sockets: BrokerSockets
}

/**
 * Clock and CPU times read together, then the subscriber's count and the kernel's counters asked for
 * at once (a few ms: the same at both ends of a window, so the skew cancels out).
 */
async function sample(target: RunningTarget, sub: ChildProcess): Promise<Sample> {
  const t = performance.now()
  const proxyCpu = target.proxyPid === null ? 0 : cpuSeconds(target.proxyPid)
  const brokerCpu = cpuSeconds(target.brokerPid)
  const split = target.proxyPid === null ? { user: 0, system: 0 } : cpuSplit(target.proxyPid)
  const own = process.cpuUsage()
  const loadgenCpu = (own.user + own.system) / 1e6 + cpuSeconds(sub.pid!)
  const [counted, sockets] = await Promise.all([count(sub), brokerSockets(target.brokerPort)])
  return { t, proxyCpu, brokerCpu, proxyUser: split.user, proxySystem: split.system, loadgenCpu, publishes: counted.publishes, closed: counted.closed, sockets }
}

function count(sub: ChildProcess): Promise<{ publishes: number; closed: boolean }> {
  const answer = once(sub, 'message') as Promise<[{ publishes: number; closed: boolean }]>
  sub.send('count')
  return answer.then(([m]) => m)
}
