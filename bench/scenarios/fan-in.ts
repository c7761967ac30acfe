/**
 * Fan-in: N publishers, one subscriber on `bench/#`. Either as fast as the publishers can write
 * (pipelined batches of pre-encoded frames, QoS 0), or at a fixed total offered rate (QoS 1, each
 * publisher pacing itself and counting PUBACKs). Measured: messages the subscriber received per
 * second, and the CPU time broker and proxy spent per delivered message (from /proc).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { cpuSeconds, sleep } from '../processes.js'
import { openClient, publishFrame, type Client } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, type RunningTarget } from '../targets.js'

export interface FanInOptions {
  readonly publishers: number
  readonly payloadBytes: number
  readonly qos: 0 | 1
  /** Total offered messages per second; 0: as fast as possible. */
  readonly rate: number
  readonly seconds: number
  readonly warmupSeconds: number
  /** Frames per write when unpaced. */
  readonly batch: number
}

export interface FanInResult {
  readonly deliveredPerSecond: number
  /** What the publishers wrote per second (QoS 0: the difference was dropped on the way, mostly by the broker for a subscriber it could not write to fast enough). */
  readonly sentPerSecond: number
  readonly offeredPerSecond: number | null
  /** CPU microseconds per delivered message: the proxy's (null when direct) and the broker's. */
  readonly proxyCpuUsPerMessage: number | null
  readonly brokerCpuUsPerMessage: number
}

export async function fanIn(target: RunningTarget, o: FanInOptions, runId: string): Promise<FanInResult> {
  const sub = fork(fileURLToPath(new URL('../subscriber.js', import.meta.url)), [target.endpoint.host, String(target.endpoint.port), `sub-${runId}`, benchUser(0), BENCH_PASSWORD, 'bench/#', String(o.qos)])
  await once(sub, 'message')
  const payload = Buffer.alloc(o.payloadBytes, 7)
  const publishers: Client[] = []
  for (let i = 0; i < o.publishers; i++) {
    publishers.push(await openClient(target.endpoint, { clientId: `pub-${runId}-${i}`, username: benchUser(i + 1), password: BENCH_PASSWORD }))
  }
  let stop = false
  let sent = 0
  const timers: NodeJS.Timeout[] = []
  publishers.forEach((p, i) => {
    const topic = `bench/pub-${i}/load`
    if (o.rate === 0) {
      const frame = publishFrame(topic, payload, o.qos, 1)
      const batch = Buffer.concat(Array.from({ length: o.batch }, () => frame))
      const pump = (): void => {
        while (!stop) {
          sent += o.batch
          if (!p.socket.write(batch)) return void p.socket.once('drain', pump)
        }
      }
      setImmediate(pump)
    } else {
      // Paced: every 5 ms send what is due at rate / publishers since the start.
      const template = publishFrame(topic, payload, o.qos, 1)
      const idOffset = template.length - o.payloadBytes - 2
      const perMs = o.rate / o.publishers / 1000
      const t0 = performance.now()
      let due0 = 0
      let id = 0
      const tick = (): void => {
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
      }
      timers.push(setInterval(tick, 5))
    }
  })
  await sleep(o.warmupSeconds * 1000)
  const cpuProxy0 = target.proxyPid === null ? 0 : cpuSeconds(target.proxyPid)
  const cpuBroker0 = cpuSeconds(target.brokerPid)
  const received0 = (await count(sub)).publishes
  const sent0 = sent
  const t0 = performance.now()
  await sleep(o.seconds * 1000)
  const end = await count(sub)
  const received = end.publishes - received0
  const sentInWindow = sent - sent0
  const elapsed = (performance.now() - t0) / 1000
  const cpuProxy = target.proxyPid === null ? 0 : cpuSeconds(target.proxyPid) - cpuProxy0
  const cpuBroker = cpuSeconds(target.brokerPid) - cpuBroker0
  if (end.closed) console.error(`fan-in ${runId}: the subscriber's connection closed during the run`)
  stop = true
  for (const t of timers) clearInterval(t)
  for (const p of publishers) p.close()
  sub.send('stop')
  await sleep(200)
  return {
    deliveredPerSecond: received / elapsed,
    sentPerSecond: sentInWindow / elapsed,
    offeredPerSecond: o.rate === 0 ? null : o.rate,
    proxyCpuUsPerMessage: target.proxyPid === null || received === 0 ? null : (cpuProxy / received) * 1e6,
    brokerCpuUsPerMessage: received === 0 ? 0 : (cpuBroker / received) * 1e6,
  }
}

function count(sub: ChildProcess): Promise<{ publishes: number; closed: boolean }> {
  const answer = once(sub, 'message') as Promise<[{ publishes: number; closed: boolean }]>
  sub.send('count')
  return answer.then(([m]) => m)
}
