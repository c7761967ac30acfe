/**
 * Two builds of Moat side by side, for an A/B of a change on the connection path: A (this
 * checkout's `dist`, or `--a DIR`) and B (`--b DIR`), each in front of its own Mosquitto, all four
 * processes on core 0, loaded at once by the paired connect scenario (scenarios/paired.ts: CONNECT
 * with user name and password, the bench's policy). Changes of the machine's speed between runs
 * are larger than most changes worth measuring; side by side, both builds see the same machine in
 * each window, and the difference B − A is taken window by window.
 *
 *   npm run bench:ab -- --b DIR [--a DIR] [--transport plain|tls] [--resume] [--runs 3] [--windows 5] [--seconds 4] [--warmup 3000] [--in-flight 50]
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
import { pairedConnect } from './scenarios/paired.js'
import { startTarget, type Placement, type RunningTarget } from './targets.js'

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
  },
})
if (values.b === undefined) throw new Error('--b DIR: the dist directory of the build to compare (see the header of bench/moat-ab.ts)')
const clis = [values.a, values.b].map((d) => join(resolve(d), 'cli.js')) as [string, string]
for (const cli of clis) if (!existsSync(cli)) throw new Error(`${cli}: no such file (build with npm run build)`)
if (values.transport !== 'plain' && values.transport !== 'tls') throw new Error('--transport plain|tls')
const kind = values.transport === 'tls' ? 'moat-tls' as const : 'moat' as const

// The load generator on core 1, the servers on core 0 (as npm run bench places them).
execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
const placement: Placement = { serverCores: '0', nofile: 4096, upstreamSources: 0, proxyScheduling: 'normal', moatCoalescing: null }
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-ab-'))
const options = { inFlight: Number(values['in-flight']), warmupRounds: Number(values.warmup), windows: Number(values.windows), seconds: Number(values.seconds), resume: values.resume }

console.log(`A ${clis[0]}\nB ${clis[1]}\n${values.transport}${values.resume ? ', resumed' : ''}: ${options.inFlight} in flight towards each, ${options.windows} windows of ${options.seconds} s after ${options.warmupRounds} connections each`)
console.log('CPU per connection, ms: A, B, B − A per window')
const differences: number[] = []
try {
  for (let run = 0; run < Number(values.runs); run++) {
    // Alternate which build is started first and loaded as the first side, so that an order effect,
    // if there is one (bench/README.md, bench:ab), cancels.
    const order: [0 | 1, 0 | 1] = run % 2 === 0 ? [0, 1] : [1, 0]
    const started: RunningTarget[] = []
    try {
      for (const i of order) started[i] = await startTarget(kind, dir, placement, clis[i])
      const results = await pairedConnect(started[order[0]]!, started[order[1]]!, options, `ab-${run}`)
      const [a, b] = order[0] === 0 ? results : [results[1], results[0]]
      const rows = a.windowCpuMs.map((x, w) => `${x.toFixed(3)} ${b.windowCpuMs[w]!.toFixed(3)} ${b.windowDifferenceMs[w]! >= 0 ? '+' : ''}${b.windowDifferenceMs[w]!.toFixed(3)}`)
      console.log(`run ${run + 1}: ${rows.join(' | ')}`)
      differences.push(...b.windowDifferenceMs)
    } finally {
      for (const t of started) await t?.stop()
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
const sorted = [...differences].sort((x, y) => x - y)
const fmt = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`
console.log(`B − A over ${differences.length} windows: median ${fmt(median(differences))} ms per connection (from ${fmt(sorted[0]!)} to ${fmt(sorted.at(-1)!)}); B lower in ${differences.filter((d) => d < 0).length}`)
