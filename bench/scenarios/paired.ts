/**
 * Paired connect: Moat and the bare Node pass-through loaded at the same time, each in front of its
 * own broker, all four processes on the servers' core, so that both proxies are measured over the
 * same windows, on a machine in the same state.
 *
 * Why: the target "Moat's CPU per TLS connection ≤ the pass-through's + 0.2 ms" is a difference of
 * two figures of about 1 ms each, and this machine changes speed between runs by more than that
 * difference. Measured one after the other (the concurrent scenario), the two differed by +0.16 to
 * +0.54 ms over eight runs, and single runs in separate processes put Moat under the pass-through;
 * measured side by side, the windows of one run agree within a few hundredths of a millisecond.
 *
 * The load generator keeps `inFlight` connections open and closing towards each proxy (connect,
 * CONNECT, CONNACK, DISCONNECT), without pause, for the warm-up and then for `windows` windows of
 * `seconds`. At each window's edges it reads both proxies' CPU time; a window's figure for a proxy is
 * its CPU over the connections it completed in that window, and the difference is taken window by
 * window. With `resume`, each of the load generator's connection loops offers the TLS session its
 * previous connection received (a reconnecting fleet).
 */
import { cpuSecondsPrecise as cpuSeconds, sleep } from '../processes.js'
import { Client, resumed } from '../loadgen.js'
import { BENCH_PASSWORD, benchUser, type RunningTarget } from '../targets.js'
import { median } from '../report.js'

export interface PairedOptions {
  /** Connections outstanding towards each proxy. */
  readonly inFlight: number
  /** Connections each proxy completes before the windows start (auth cache, JIT). */
  readonly warmupRounds: number
  readonly windows: number
  readonly seconds: number
  readonly resume: boolean
}

/** One proxy's side of a paired run. */
export interface PairedResult {
  /** Median over the windows of the proxy's CPU per connection completed. */
  readonly proxyCpuMsPerConnection: number
  /** The same, window by window. */
  readonly windowCpuMs: number[]
  /** Connections completed per second over the windows. */
  readonly achievedRate: number
  /** This proxy minus the other, window by window, and their median (ms per connection). */
  readonly windowDifferenceMs: number[]
  readonly pairedDifferenceMs: number
  /** TLS: share of the measured connections that resumed a session (null for plain targets). */
  readonly resumedShare: number | null
}

/** The load towards one proxy: `inFlight` loops of connect, CONNECT, DISCONNECT until stopped. */
class Side {
  completed = 0
  resumedCount = 0
  /** The first refused or failed connection: the run is void. */
  failure: Error | null = null
  private stopping = false
  private readonly loops: Promise<void>[]

  constructor(private readonly target: RunningTarget, inFlight: number, resume: boolean, runId: string) {
    this.loops = Array.from({ length: inFlight }, (_, slot) => this.loop(slot, resume, runId))
  }

  private async loop(slot: number, resume: boolean, runId: string): Promise<void> {
    let session: Buffer | undefined
    for (let i = 0; !this.stopping; i++) {
      const c = new Client(this.target.endpoint, undefined, resume ? session : undefined)
      const code = await c.connect({ clientId: `pair-${runId}-${slot}-${i}`, username: benchUser(slot), password: BENCH_PASSWORD })
      const reused = resumed(c.socket)
      await c.disconnect()
      if (code !== 0) {
        this.failure ??= new Error(`paired ${this.target.kind}: CONNACK ${code}${c.error === null ? '' : ` (${c.error})`}`)
        this.stopping = true
        return
      }
      this.completed++
      if (reused) this.resumedCount++
      if (c.session !== null) session = c.session
    }
  }

  /** Throws the first failure of either side. */
  static check(sides: readonly Side[]): void {
    for (const s of sides) if (s.failure !== null) throw s.failure
  }

  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.loops)
  }
}

export async function pairedConnect(a: RunningTarget, b: RunningTarget, o: PairedOptions, runId: string): Promise<[PairedResult, PairedResult]> {
  const sides = [new Side(a, o.inFlight, o.resume, `${runId}a`), new Side(b, o.inFlight, o.resume, `${runId}b`)] as const
  const pids = [a.proxyPid, b.proxyPid]
  if (pids[0] === null || pids[1] === null) throw new Error('paired: both targets must be proxies')
  try {
    while (sides[0].completed < o.warmupRounds || sides[1].completed < o.warmupRounds) {
      Side.check(sides)
      await sleep(100)
    }
    const cpuMs: [number[], number[]] = [[], []]
    const resumedAtStart = sides.map((s) => s.resumedCount)
    const completedAtStart = sides.map((s) => s.completed)
    let cpu = pids.map((p) => cpuSeconds(p!))
    let count = sides.map((s) => s.completed)
    const t0 = performance.now()
    for (let w = 0; w < o.windows; w++) {
      await sleep(o.seconds * 1000)
      Side.check(sides)
      const cpuNow = pids.map((p) => cpuSeconds(p!))
      const countNow = sides.map((s) => s.completed)
      for (let i = 0; i < 2; i++) {
        const n = countNow[i]! - count[i]!
        cpuMs[i]!.push(n === 0 ? NaN : ((cpuNow[i]! - cpu[i]!) / n) * 1000)
      }
      cpu = cpuNow
      count = countNow
    }
    const seconds = (performance.now() - t0) / 1000
    const difference = cpuMs[0].map((x, w) => x - cpuMs[1][w]!)
    const side = (i: 0 | 1, diff: number[]): PairedResult => ({
      proxyCpuMsPerConnection: median(cpuMs[i]),
      windowCpuMs: cpuMs[i],
      achievedRate: (count[i]! - completedAtStart[i]!) / seconds,
      windowDifferenceMs: diff,
      pairedDifferenceMs: median(diff),
      resumedShare: [a, b][i]!.endpoint.tls === undefined ? null : (sides[i].resumedCount - resumedAtStart[i]!) / Math.max(1, sides[i].completed - completedAtStart[i]!),
    })
    return [side(0, difference), side(1, difference.map((d) => -d))]
  } finally {
    await Promise.all(sides.map((s) => s.stop()))
  }
}
