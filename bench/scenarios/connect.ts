/**
 * CONNECT latency, one at a time and with nothing else running: `rounds` sequential
 * CONNECT → CONNACK → DISCONNECT rounds, each on a fresh TCP connection, with user name and
 * password (the bench's file-auth users, in turn). First `warmupRounds` (10,000) warm-up rounds over
 * every user, so that Moat's auth cache is warm (the "cache warm") and its connection path
 * has been optimised by the JIT, as in a proxy that has been running for a while (why 10,000: see
 * DEFAULT_WARMUP_ROUNDS). The time is taken from opening the TCP
 * connection (the CONNECT is written at once) to the CONNACK: what a client sees, including the
 * proxy's accept and its connection to the broker. The next round starts once the previous
 * connection has closed. Reports p50 / p99 / max (Moat − direct is what Moat adds to a CONNECT),
 * and the CPU time proxy and broker spent per round (a figure that does not depend on how busy
 * the machine is).
 *
 * Against a TLS target each round is a TLS handshake (TLS 1.3, the server certificate verified)
 * then the CONNECT; with `resume`, each round offers the TLS session the previous round received
 * (`tls.connect({ session })`), as a reconnecting device would, and the rounds that resumed are
 * counted (`isSessionReused()`).
 */
import type { TLSSocket } from 'node:tls'
import { connectFrame, dial, resumed } from '../loadgen.js'
import { cpuSecondsPrecise as cpuSeconds } from '../processes.js'
import { BENCH_PASSWORD, BENCH_USERS, benchUser, type RunningTarget } from '../targets.js'
import { negotiated } from '../tls.js'
import { percentile } from './latency.js'

export interface ConnectOptions {
  readonly rounds: number
  /** Rounds before the measured ones (at least one per bench user); DEFAULT_WARMUP_ROUNDS when absent. */
  readonly warmupRounds?: number
  /** TLS targets: offer the previous round's session (warm-up rounds too). */
  readonly resume?: boolean
}

export interface ConnectResult {
  readonly rounds: number
  readonly warmupRounds: number
  readonly refused: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** CPU milliseconds (all threads, schedstat) per measured round: the proxy's (null when direct) and the broker's. */
  readonly proxyCpuMsPerConnect: number | null
  readonly brokerCpuMsPerConnect: number
  /** This process's CPU milliseconds per round (the client's side of the handshake). */
  readonly loadgenCpuMsPerConnect: number
  /** TLS: share of the measured rounds that resumed a session (null for plain targets), and what the last handshake negotiated. */
  readonly resumedShare: number | null
  readonly tls: string | null
}

const DISCONNECT = Buffer.from([0xe0, 0x00])

/** What a TLS round leaves for the next: the session to offer, whether it resumed, what it negotiated. */
interface TlsState { session: Buffer | undefined; resumed: boolean; negotiated: string | null }

/** One round: resolves with the milliseconds from opening the connection to the CONNACK, or -1 (refused or closed first). */
function round(target: RunningTarget, frame: Buffer, state: TlsState | null): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now()
    const s = dial(target.endpoint, undefined, state?.session)
    s.setNoDelay(true)
    if (state !== null) s.on('session', (session: Buffer) => { state.session = session })
    let ms = -1
    let head = Buffer.alloc(0)
    let decided = false
    s.on('error', () => {})
    s.setTimeout(10_000, () => s.destroy()) // a round that hangs counts as refused
    s.on('data', (d: Buffer) => {
      if (decided) return
      head = Buffer.concat([head, d]) // the CONNACK (0x20 0x02 flags code) may arrive split
      if (head.length < 4) return
      decided = true
      if (head[0] === 0x20 && head[3] === 0) {
        ms = performance.now() - start
        if (state !== null) {
          state.resumed = resumed(s)
          state.negotiated = negotiated(s as TLSSocket)
        }
        s.end(DISCONNECT)
      } else s.destroy()
    })
    s.on('close', () => resolve(ms))
    s.write(frame)
  })
}

/**
 * Warm-up CONNECT rounds before the measured ones. V8 optimises a function after it has run a
 * budget of bytecode, so a function that runs once per CONNECT (Moat's, and Node's own accept and
 * connect path) is compiled only after thousands of CONNECTs. Measured 2026-12-03 (the V8 worker
 * threads' CPU, from /proc, per 1,000 rounds through Moat): 231 ms in rounds 1,000-2,000, 107 in
 * 2,000-3,000, 62 in 3,000-4,000, then 18-23 ms from round 4,000 on (the libuv pool's log writes and
 * GC; --trace-opt: compile jobs of 1-9 ms each until about round 4,000, one every 1,000-2,000
 * rounds after). Each compile job runs on the core shared with the broker, and the broker, woken by
 * a CONNECT meanwhile, waited up to 4 ms for it (`perf sched`: this VM's kernel is PREEMPT_NONE at
 * HZ 250): with 2,000 warm-up rounds (before 2026-12-03) Moat's p99 was 2-3 ms, with 10,000 or
 * 20,000 0.5-0.8 ms. 10,000 is more than twice where the compiling stops. `--connect-warmup 2000`
 * measures the earlier state.
 */
export const DEFAULT_WARMUP_ROUNDS = 10_000

export async function connect(target: RunningTarget, o: ConnectOptions, runId: string): Promise<ConnectResult> {
  const frame = (i: number, phase: string): Buffer => connectFrame({ clientId: `c${phase}-${runId}-${i}`, username: benchUser(i), password: BENCH_PASSWORD })
  // Warm-up: every user once (the auth cache), then on, so that a long-running proxy's connection
  // path is measured (optimised by the JIT), not its first few thousand CONNECTs.
  const warmupRounds = Math.max(BENCH_USERS, o.warmupRounds ?? DEFAULT_WARMUP_ROUNDS)
  const isTls = target.endpoint.tls !== undefined
  let session: Buffer | undefined
  let negotiatedLast: string | null = null
  /** One round; TLS: offers the last session received when resuming, and keeps the one this round receives. */
  const measured = async (f: Buffer): Promise<{ ms: number; resumed: boolean }> => {
    const state: TlsState | null = isTls ? { session: o.resume === true ? session : undefined, resumed: false, negotiated: null } : null
    const ms = await round(target, f, state)
    if (state !== null) {
      session = state.session ?? session
      negotiatedLast = state.negotiated ?? negotiatedLast
    }
    return { ms, resumed: state?.resumed === true }
  }
  for (let i = 0; i < warmupRounds; i++) {
    if ((await measured(frame(i, 'w'))).ms < 0) throw new Error(`connect ${target.kind}: warm-up CONNECT of ${benchUser(i)} refused`)
  }
  const proxyCpu0 = target.proxyPid === null ? 0 : cpuSeconds(target.proxyPid)
  const brokerCpu0 = cpuSeconds(target.brokerPid)
  const ownCpu0 = process.cpuUsage()
  const times = new Float64Array(o.rounds)
  let done = 0
  let refused = 0
  let resumedRounds = 0
  for (let i = 0; i < o.rounds; i++) {
    const r = await measured(frame(i, 'm'))
    if (r.ms < 0) refused++
    else times[done++] = r.ms
    if (r.resumed) resumedRounds++
  }
  const ownCpu = process.cpuUsage(ownCpu0)
  const proxyCpu = target.proxyPid === null ? null : cpuSeconds(target.proxyPid) - proxyCpu0
  const brokerCpu = cpuSeconds(target.brokerPid) - brokerCpu0
  const sorted = times.slice(0, done).sort()
  return {
    rounds: done,
    warmupRounds,
    refused,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    proxyCpuMsPerConnect: proxyCpu === null ? null : (proxyCpu / o.rounds) * 1000,
    brokerCpuMsPerConnect: (brokerCpu / o.rounds) * 1000,
    loadgenCpuMsPerConnect: (ownCpu.user + ownCpu.system) / 1000 / o.rounds,
    resumedShare: isTls ? resumedRounds / o.rounds : null,
    tls: negotiatedLast,
  }
}
