/**
 * Latency: one publisher at a fixed rate (QoS 1), one subscriber (QoS 1) in the same process, so
 * both ends read the same clock: each payload carries its send time; the subscriber records
 * receive time minus send time. Reports p50, p99 and p99.9 in milliseconds, after a warm-up.
 */
import { sleep } from '../processes.js'
import { openClient, publishFrame } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, type RunningTarget } from '../targets.js'

export interface LatencyOptions {
  readonly rate: number
  readonly seconds: number
  readonly warmupSeconds: number
  readonly payloadBytes: number
}

export interface LatencyResult {
  readonly samples: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}

export async function latency(target: RunningTarget, o: LatencyOptions, runId: string): Promise<LatencyResult> {
  const sub = await openClient(target.endpoint, { clientId: `lsub-${runId}`, username: benchUser(0), password: BENCH_PASSWORD })
  await sub.subscribe('bench/latency', 1) // its own topic only: under load (loaded-latency) the fan-in's messages flow too
  const pub = await openClient(target.endpoint, { clientId: `lpub-${runId}`, username: benchUser(1), password: BENCH_PASSWORD })
  const samples = new Float64Array(Math.ceil(o.rate * (o.seconds + o.warmupSeconds + 2)))
  let count = 0
  let recording = false
  sub.onPublish = (frame, _flags, bodyOffset) => {
    const now = performance.now()
    if (!recording || count >= samples.length) return
    const payloadStart = bodyOffset + 2 + frame.readUInt16BE(bodyOffset) + 2 // QoS 1: packet id
    samples[count++] = now - frame.readDoubleLE(payloadStart)
  }
  const template = publishFrame('bench/latency', Buffer.alloc(Math.max(8, o.payloadBytes)), 1, 1)
  const payloadOffset = template.length - Math.max(8, o.payloadBytes)
  const perMs = o.rate / 1000
  const t0 = performance.now()
  let sent = 0
  let id = 0
  const timer = setInterval(() => {
    const now = performance.now()
    const due = Math.floor((now - t0) * perMs) - sent
    for (let k = 0; k < due; k++) {
      const frame = Buffer.from(template)
      id = id % 65535 + 1
      frame.writeUInt16BE(id, payloadOffset - 2)
      frame.writeDoubleLE(performance.now(), payloadOffset)
      pub.socket.write(frame)
    }
    if (due > 0) sent += due
  }, 1)
  await sleep(o.warmupSeconds * 1000)
  recording = true
  await sleep(o.seconds * 1000)
  recording = false
  clearInterval(timer)
  pub.close()
  sub.close()
  await sleep(100)
  const sorted = samples.slice(0, count).sort()
  return { samples: count, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), p999Ms: percentile(sorted, 0.999) }
}
