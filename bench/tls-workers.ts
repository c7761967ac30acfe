/**
 * Whether `workers: N` spreads TLS handshakes over cores: Moat with an `mqtts` listener in front of
 * Mosquitto, started with `workers: 1` and then `workers: 2`, takes TLS handshake + CONNECT +
 * DISCONNECT rounds from `--loops` concurrent client loops for `--seconds`; reported per run: rounds
 * per second and each Moat process's CPU (primary and every worker), so the share each worker took
 * is visible. Nothing is pinned (the workers need the cores); the load generator and the broker
 * share the machine with them, so read the shares and the ratio of the rates, not the rates.
 *
 *   npm run bench:tls-workers -- [--seconds 10] [--loops 50] [--resume]
 *
 * `--resume`: each loop offers its previous TLS session (the workers share their ticket keys, so a
 * ticket issued by one is taken by the other).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type tls from 'node:tls'
import { connectFrame } from './loadgen.js'
import { cpuSecondsPrecise, freePort, listening, sleep } from './processes.js'
import { BENCH_PASSWORD, benchUser, moatYaml, writePasswd } from './targets.js'
import { serverCerts, tlsConnect } from './tls.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, loops: { type: 'string', default: '50' }, resume: { type: 'boolean', default: false } } })
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
const DISCONNECT = Buffer.from([0xe0, 0x00])

/** One TLS handshake + CONNECT → CONNACK → DISCONNECT; resolves with the session to offer next (or null) and whether it was resumed. */
function round(port: number, caFile: string, i: number, session: Buffer | null): Promise<{ ok: boolean; resumed: boolean; session: Buffer | null }> {
  return new Promise((resolve) => {
    const s: tls.TLSSocket = tlsConnect({ caFile }, '127.0.0.1', port, undefined, session ?? undefined)
    let next: Buffer | null = null
    let ok = false
    s.on('session', (t: Buffer) => { next = t })
    s.on('error', () => undefined)
    s.once('secureConnect', () => s.write(connectFrame({ clientId: `w-${i}-${Math.random()}`, username: benchUser(i), password: BENCH_PASSWORD })))
    s.on('data', (d: Buffer) => {
      if (ok || d.length < 4) return
      ok = d[0] === 0x20 && d[3] === 0
      s.end(DISCONNECT)
    })
    s.on('close', () => resolve({ ok, resumed: s.isSessionReused(), session: next }))
  })
}

function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter((l) => l !== '').map(Number)
  } catch {
    return []
  }
}

async function run(dir: string, workers: number, brokerPort: number): Promise<void> {
  const certs = serverCerts(dir)
  const port = await freePort()
  const adminPort = await freePort()
  const placement = { serverCores: '0,1', nofile: 20_000, upstreamSources: 0, proxyScheduling: 'normal' as const }
  const yaml = moatYaml(brokerPort, adminPort, 50, placement, port)
    .replace(/^listeners: .*$/m, `listeners: [{ name: bench, protocol: mqtts, host: 127.0.0.1, port: ${port}, tls: { cert: ${certs.certFile}, key: ${certs.keyFile} } }]`)
    .replace(/^log: .*$/m, 'log: { level: warn }')
  const conf = join(dir, `moat-workers-${workers}.yaml`)
  writeFileSync(conf, `${yaml}\nworkers: ${workers}\n`)
  const moat: ChildProcess = spawn(process.execPath, ['--no-memory-reducer', '--max-semi-space-size=4', CLI, '--config', conf], { stdio: ['ignore', 'ignore', 'inherit'] })
  try {
    await listening(port)
    await sleep(1000) // every worker up
    const pids = [moat.pid!, ...children(moat.pid!)]
    let stop = false
    let rounds = 0
    let resumed = 0
    const loop = async (l: number): Promise<void> => {
      let session: Buffer | null = null
      for (let i = l; !stop; i += Number(values.loops)) {
        const r = await round(port, certs.caFile, i, values.resume ? session : null)
        session = r.session
        if (r.ok) rounds++
        if (r.resumed) resumed++
      }
    }
    const loops = Array.from({ length: Number(values.loops) }, (_, l) => loop(l))
    await sleep(2000) // warm-up: JIT, the auth cache, the first tickets
    const r0 = rounds
    const q0 = resumed
    const cpu0 = pids.map(cpuSecondsPrecise)
    const t0 = performance.now()
    await sleep(Number(values.seconds) * 1000)
    const seconds = (performance.now() - t0) / 1000
    const cpu = pids.map((p, i) => cpuSecondsPrecise(p) - cpu0[i]!)
    const done = rounds - r0
    stop = true
    await Promise.all(loops)
    const shares = cpu.map((c, i) => `${i === 0 ? 'primary' : `worker ${i}`} ${((c / seconds) * 100).toFixed(0)} %`).join(', ')
    const total = cpu.reduce((a, b) => a + b, 0)
    console.log(`workers: ${workers}: ${(done / seconds).toFixed(0)} TLS handshake + CONNECT rounds/s (${((resumed - q0) / Math.max(1, done) * 100).toFixed(0)} % resumed); CPU of a core: ${shares}; ${((total / done) * 1e6).toFixed(0)} µs per round over all Moat processes`)
  } finally {
    moat.kill('SIGKILL')
    await new Promise((r) => moat.once('exit', r))
  }
}

const dir = mkdtempSync(join(tmpdir(), 'moat-bench-workers-'))
writePasswd(dir)
const brokerPort = await freePort()
const mosquittoConf = join(dir, 'mosquitto.conf')
writeFileSync(mosquittoConf, `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nlog_dest none\n`)
const broker = spawn('/usr/sbin/mosquitto', ['-c', mosquittoConf], { stdio: 'ignore' })
try {
  await listening(brokerPort)
  console.log(`Moat workers and TLS handshakes: ${values.loops} client loops, ${values.seconds} s, ${values.resume ? 'sessions offered for resumption' : 'full handshakes'}; ${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} cores, nothing pinned`)
  for (const workers of [1, 2]) await run(dir, workers, brokerPort)
} finally {
  broker.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
