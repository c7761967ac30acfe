/**
 * Two builds of Moat side by side, for an A/B of a change: A (this checkout's `dist`, or `--a DIR`)
 * and B (`--b DIR`), each in front of its own Mosquitto, all four processes on core 0, loaded at
 * once. Changes of the machine's speed between runs are larger than most changes worth measuring;
 * side by side, both builds see the same machine at the same time.
 *
 * - `--scenario connect` (default): the paired connect scenario (scenarios/paired.ts: CONNECT with
 *   user name and password, the bench's policy); B − A is taken window by window.
 * - `--scenario fan-in`: a fan-in burst (scenarios/fan-in.ts: 50 publishers, one subscriber on a
 *   wildcard, QoS 0, `--payload` bytes) into both at once; B − A is Moat's CPU per message forwarded,
 *   run by run.
 *
 * `--coalescing WAIT[,ABOVE]` sets both Moats' `coalescing` (as `npm run bench --coalescing`; `0`: off).
 *
 * `--b-target haproxy|node-pipe` puts that target (over `--transport`) in B's place, for Moat
 * against another proxy under the same load at the same time.
 *
 *   npm run bench:ab -- --b DIR [--a DIR] [--transport plain|tls] [--runs 3]
 *   npm run bench:ab -- --b-target haproxy|node-pipe [--a DIR] [--transport plain|tls] [--scenario …]
 *     connect: [--resume] [--windows 5] [--seconds 4] [--warmup 3000] [--in-flight 50]
 *     fan-in:  --scenario fan-in [--payload 1024] [--burst 5000]
 *
 * DIR is a build's `dist` directory. A copy inside this checkout finds this checkout's packages:
 * `cp -r dist .ab-dist`, change the source, `npm run build`, then `--b dist --a .ab-dist`.
 * Runs alternate which build starts first and is loaded first.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median } from './report.js'
import { fanIn } from './scenarios/fan-in.js'
import { pairedConnect } from './scenarios/paired.js'
import { kindFor, startTarget, type Placement, type RunningTarget, type TargetKind, type Transport } from './targets.js'

const { values } = parseArgs({
  options: {
    a: { type: 'string', default: fileURLToPath(new URL('../../dist', import.meta.url)) },
    b: { type: 'string' },
    transport: { type: 'string', default: 'plain' },
    resume: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    windows: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '3000' },
    'in-flight': { type: 'string', default: '50' },
    scenario: { type: 'string', default: 'connect' },
    payload: { type: 'string', default: '1024' },
    burst: { type: 'string', default: '5000' },
    'b-target': { type: 'string' },
    coalescing: { type: 'string' },
  },
})
const bTarget = values['b-target']
if (bTarget !== undefined && bTarget !== 'haproxy' && bTarget !== 'node-pipe') throw new Error('--b-target haproxy|node-pipe')
if (values.b === undefined && bTarget === undefined) throw new Error('--b DIR: the dist directory of the build to compare, or --b-target (see the header of bench/moat-ab.ts)')
const clis = [values.a, values.b ?? values.a].map((d) => join(resolve(d), 'cli.js')) as [string, string]
for (const cli of clis) if (!existsSync(cli)) throw new Error(`${cli}: no such file (build with npm run build)`)
if (values.transport !== 'plain' && values.transport !== 'tls') throw new Error('--transport plain|tls')
const transport: Transport = values.transport
const kind = kindFor('moat', transport)!
const kinds: [TargetKind, TargetKind] = [kind, bTarget === undefined ? kind : kindFor(bTarget, transport)!]
const names = [clis[0], bTarget === undefined ? clis[1] : kinds[1]]
if (values.scenario !== 'connect' && values.scenario !== 'fan-in') throw new Error('--scenario connect|fan-in')

// The load generator on core 1, the servers on core 0 (as npm run bench places them).
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
const placement: Placement = { serverCores: '0', nofile: 4096, upstreamSources: 0, proxyScheduling: 'normal', moatCoalescing: values.coalescing ?? null }
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-ab-'))
const options = { inFlight: Number(values['in-flight']), warmupRounds: Number(values.warmup), windows: Number(values.windows), seconds: Number(values.seconds), resume: values.resume }

const fanInOptions = { publishers: 50, payloadBytes: Number(values.payload), qos: 0 as const, rate: 0, burst: Number(values.burst), seconds: 0, warmupSeconds: 0, batch: 16 }
const unit = values.scenario === 'connect' ? 'ms per connection' : 'µs per message'

if (values.scenario === 'connect') {
  console.log(`A ${names[0]}\nB ${names[1]}\n${values.transport}${values.resume ? ', resumed' : ''}: ${options.inFlight} in flight towards each, ${options.windows} windows of ${options.seconds} s after ${options.warmupRounds} connections each`)
  console.log('CPU per connection, ms: A, B, B − A per window')
} else {
  console.log(`A ${names[0]}\nB ${names[1]}\n${values.transport} fan-in: a burst of ${fanInOptions.burst} × ${fanInOptions.publishers} messages of ${fanInOptions.payloadBytes} B into each at once`)
  console.log('proxy CPU per message forwarded, µs: A, B, B − A per run')
}
const differences: number[] = []
const ratios: number[] = []
try {
  for (let run = 0; run < Number(values.runs); run++) {
    // Alternate which build is started first and loaded as the first side, so that an order effect,
    // if there is one (bench/README.md, bench:ab), cancels.
    const order: [0 | 1, 0 | 1] = run % 2 === 0 ? [0, 1] : [1, 0]
    const started: RunningTarget[] = []
    try {
      for (const i of order) started[i] = await startTarget(kinds[i], dir, placement, clis[i])
      if (values.scenario === 'connect') {
        const results = await pairedConnect(started[order[0]]!, started[order[1]]!, options, `ab-${run}`)
        const [a, b] = order[0] === 0 ? results : [results[1], results[0]]
        const rows = a.windowCpuMs.map((x, w) => `${x.toFixed(3)} ${b.windowCpuMs[w]!.toFixed(3)} ${b.windowDifferenceMs[w]! >= 0 ? '+' : ''}${b.windowDifferenceMs[w]!.toFixed(3)}`)
        console.log(`run ${run + 1}: ${rows.join(' | ')}`)
        differences.push(...b.windowDifferenceMs)
      } else {
        const results = await Promise.all(order.map((i) => fanIn(started[i]!, fanInOptions, `ab-${run}-${i}`)))
        const [a, b] = (order[0] === 0 ? results : [results[1], results[0]]).map((r) => r!.proxyCpuUsPerForwarded) as [number, number]
        console.log(`run ${run + 1}: ${a.toFixed(2)} ${b.toFixed(2)} ${b - a >= 0 ? '+' : ''}${(b - a).toFixed(2)} (A/B ${(a / b).toFixed(2)})`)
        differences.push(b - a)
        ratios.push(a / b)
      }
    } finally {
      for (const t of started) await t?.stop()
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
const sorted = [...differences].sort((x, y) => x - y)
const fmt = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`
console.log(`B − A over ${differences.length} ${values.scenario === 'connect' ? 'windows' : 'runs'}: median ${fmt(median(differences))} ${unit} (from ${fmt(sorted[0]!)} to ${fmt(sorted.at(-1)!)}); B lower in ${differences.filter((d) => d < 0).length}`)
if (ratios.length > 0) console.log(`A/B: median ${median(ratios).toFixed(2)} (${[...ratios].sort((x, y) => x - y).map((r) => r.toFixed(2)).join(', ')})`)
