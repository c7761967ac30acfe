/**
 * The load scenarios shared by the load tests (test/load/*.test.ts, CI-sized, assert the
 * functional properties) and `npm run bench:load` (prints the figures): Moat in its own process
 * (bench/moat-child.mjs), clients in this one, a real Mosquitto, all on loopback; every scenario
 * stops by itself.
 *
 * While a scenario runs, a well-behaved client (MQTT.js, through Moat) round-trips a QoS 1 message
 * to itself every PROBE_INTERVAL_MS; its round-trip times are the "Moat stays responsive" figure.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { generate } from 'mqtt-packet'

const root = fileURLToPath(new URL(import.meta.url.includes('/.bench-dist/') ? '../..' : '..', import.meta.url))
const childScript = join(root, 'bench/moat-child.mjs')

export interface Snapshot {
  rss: number
  heapUsed: number
  external: number
  sessions: number
  closed: { connect_timeout: number; client_disconnect: number; client_closed: number; client_error: number; upstream_unavailable: number }
  upstreamConnectFailures: number
}

/** Moat in a child process: its listener port, its open-file limit, snapshots over IPC. */
export class MoatChild {
  private nextId = 0
  private readonly waiting = new Map<number, (s: Snapshot) => void>()

  private constructor(readonly child: ChildProcess, readonly port: number, readonly maxFiles: number) {
    child.on('message', (m: Snapshot & { id?: number }) => {
      if (m.id === undefined) return
      this.waiting.get(m.id)?.(m)
      this.waiting.delete(m.id)
    })
  }

  /**
   * Starts Moat with `limits` (YAML flow mapping) in front of `upstream`. The child raises its own
   * soft open-file limit as far as it may (nothing system-wide): each session holds two sockets.
   */
  static async start(upstream: { host: string; port: number }, limits = '{}', wantFiles = 65_536): Promise<MoatChild> {
    return MoatChild.startWith(() => [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: ${upstream.host}, port: ${upstream.port} }`,
      `limits: ${limits}`,
      'log: { level: error }',
      'auth: { anonymous: true }',
      '',
    ].join('\n'), wantFiles)
  }

  /**
   * Starts Moat with the config `configFor(dir)` returns, written to `dir` (a fresh temporary
   * directory, where the config may keep its other files, such as a password file). `quiet`: the
   * child's stdout (its log) is discarded.
   */
  static async startWith(configFor: (dir: string) => string, wantFiles = 65_536, quiet = false): Promise<MoatChild> {
    const dir = mkdtempSync(join(tmpdir(), 'moat-load-'))
    const config = join(dir, 'moat.yaml')
    writeFileSync(config, configFor(dir))
    const child = spawn('sh', ['-c', `ulimit -n ${wantFiles} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" --expose-gc "$@"`, process.execPath, childScript, config], {
      cwd: root,
      stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit', 'ipc'],
    })
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { ready?: boolean; port?: number }) => (m.ready === true ? resolve(m.port!) : reject(new Error('unexpected first message'))))
      child.once('exit', (code) => reject(new Error(`moat child exited (${code}) before it was ready`)))
    })
    const limitsText = readFileSync(`/proc/${child.pid}/limits`, 'utf8')
    const maxFiles = Number(/^Max open files\s+(\d+)/m.exec(limitsText)?.[1] ?? 1024)
    return new MoatChild(child, port, maxFiles)
  }

  /** Sessions, counters and memory; `gc`: after two full collections. */
  snapshot(gc = false): Promise<Snapshot> {
    const id = ++this.nextId
    return new Promise((resolve) => {
      this.waiting.set(id, resolve)
      this.child.send({ cmd: 'snapshot', id, gc })
    })
  }

  /** Writes a V8 heap snapshot of the child to `path` (after a full GC, as V8 does before a snapshot). */
  heapSnapshot(path: string): Promise<void> {
    const id = ++this.nextId
    return new Promise((resolve) => {
      this.waiting.set(id, () => resolve())
      this.child.send({ cmd: 'heapsnapshot', id, path })
    })
  }

  /** How many sessions (two sockets each) fit under the child's open-file limit, with room to spare. */
  get sessionCapacity(): number {
    return Math.floor((this.maxFiles - 200) / 2)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.send({ cmd: 'stop' })
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------- the well-behaved client

export const PROBE_INTERVAL_MS = 50

export interface RoundTrips {
  count: number
  /** Probes sent that never came back before stop(). */
  lost: number
  p50: number
  p99: number
  max: number
}

/** A user name and password for a CONNECT. */
export interface Credentials {
  readonly username: string
  readonly password: string
}

/** An honest client that round-trips a QoS 1 message to itself, one at a time, every PROBE_INTERVAL_MS. */
export class Prober {
  private readonly samples: number[] = []
  private running = true
  private loop: Promise<void> = Promise.resolve()
  private lost = 0
  private wakers: Array<() => void> = []

  private constructor(private readonly client: MqttClient, private readonly topic: string) {}

  /** `credentials`: CONNECT with them; `topicPrefix`: where the probe's topic lives (a policy must allow it). */
  static async start(port: number, credentials: Credentials | null = null, topicPrefix = 'probe'): Promise<Prober> {
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port, clientId: `probe-${process.pid}-${Date.now()}`, reconnectPeriod: 0, connectTimeout: 10_000, keepalive: 0, ...(credentials ?? {}) })
    const topic = `${topicPrefix}/${process.pid}/${Date.now()}`
    await client.subscribeAsync(topic, { qos: 1 })
    const prober = new Prober(client, topic)
    prober.loop = prober.run()
    return prober
  }

  private async run(): Promise<void> {
    let n = 0
    while (this.running) {
      const sent = performance.now()
      const tag = String(++n)
      const back = new Promise<boolean>((resolve) => {
        const onMessage = (_t: string, payload: Buffer): void => {
          if (String(payload) !== tag) return
          this.client.off('message', onMessage)
          clearTimeout(timer)
          resolve(true)
        }
        // A probe unanswered after 30 s counts as lost (and ends the wait).
        const timer = setTimeout(() => { this.client.off('message', onMessage); resolve(false) }, 30_000)
        this.client.on('message', onMessage)
      })
      this.client.publish(this.topic, tag, { qos: 1 })
      if (await back) this.samples.push(performance.now() - sent)
      else this.lost++
      for (const wake of this.wakers.splice(0)) wake()
      await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS))
    }
  }

  /** Resolves once `more` further probes have come back (or been lost). */
  async waitForProbes(more: number): Promise<void> {
    for (let i = 0; i < more; i++) await new Promise<void>((resolve) => this.wakers.push(resolve))
  }

  /** Samples so far (and keeps probing). */
  get count(): number {
    return this.samples.length
  }

  /** The round trips since the last cut; the prober keeps running. */
  cut(): RoundTrips {
    const s = this.samples.splice(0).sort((a, b) => a - b)
    const lost = this.lost
    this.lost = 0
    const at = (q: number): number => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!)
    return { count: s.length, lost, p50: at(0.5), p99: at(0.99), max: s.length === 0 ? NaN : s[s.length - 1]! }
  }

  async stop(): Promise<void> {
    this.running = false
    await this.loop
    await this.client.endAsync()
  }
}

export function describeRoundTrips(r: RoundTrips): string {
  return `honest client round trip p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms over ${r.count} probes (${r.lost} lost)`
}

// ---------------------------------------------------------------- raw sessions

const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00])
const DISCONNECT = Buffer.from([0xe0, 0x00])

function connectFrame(clientId: string, credentials: Credentials | null = null): Buffer {
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0, ...(credentials === null ? {} : { username: credentials.username, password: Buffer.from(credentials.password) }) })
}

/** One raw session: resolves with the socket once its CONNACK (accepted) arrived. */
function openSession(port: number, clientId: string, credentials: Credentials | null = null): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let got: Buffer = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d])
      if (got.length < 4) return
      socket.off('data', onData)
      socket.off('error', reject)
      socket.on('error', () => {})
      if (got.subarray(0, 4).equals(CONNACK_OK)) resolve(socket)
      else { socket.destroy(); reject(new Error(`CONNACK refused: ${got.subarray(0, 4).toString('hex')}`)) }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.once('connect', () => socket.write(connectFrame(clientId, credentials)))
  })
}

async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(count)
  let next = 0
  const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const i = next++
      out[i] = await task(i)
    }
  })
  await Promise.all(workers)
  return out
}

/**
 * Opens `count` idle MQTT sessions (keepalive 0) through `port`, `concurrency` at a time;
 * `credentials(i)`: the user name and password of session i (none: anonymous).
 */
export function openIdleSessions(port: number, count: number, concurrency = 200, credentials: ((i: number) => Credentials) | null = null): Promise<net.Socket[]> {
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
  return pool(count, concurrency, (i) => openSession(port, `idle-${run}-${i}`, credentials === null ? null : credentials(i)))
}

export async function closeAll(sockets: net.Socket[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
    if (s.destroyed) return resolve()
    s.once('close', () => resolve())
    s.end(DISCONNECT)
  })))
}

/** `workers` loops of connect → CONNACK → DISCONNECT → close, for `seconds`. Returns the completed cycles. */
export async function connectStorm(port: number, seconds: number, workers: number): Promise<{ cycles: number; failures: number; seconds: number }> {
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
  const until = performance.now() + seconds * 1000
  const started = performance.now()
  let cycles = 0
  let failures = 0
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    let i = 0
    while (performance.now() < until) {
      try {
        const socket = await openSession(port, `storm-${run}-${w}-${i++}`)
        await new Promise<void>((resolve) => {
          socket.once('close', () => resolve())
          socket.end(DISCONNECT)
        })
        cycles++
      } catch {
        failures++
      }
    }
  }))
  return { cycles, failures, seconds: (performance.now() - started) / 1000 }
}

/**
 * A slowloris: `count` connections, each sending the first bytes of a CONNECT and then nothing.
 * Resolves once Moat has closed every one of them, with how long the last one took.
 */
export async function slowloris(port: number, count: number, concurrency = 200): Promise<{ closed: number; lastClosedAfterMs: number }> {
  const partial = connectFrame('slowloris-never-finishes').subarray(0, 7)
  const started = performance.now()
  let last = 0
  const closed = await pool(count, concurrency, () => new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.once('error', reject)
    socket.once('connect', () => { socket.write(partial); resolve(socket) })
  }))
  await Promise.all(closed.map((s) => new Promise<void>((resolve) => {
    s.on('error', () => {})
    s.resume()
    if (s.destroyed) return resolve()
    s.once('close', () => { last = performance.now() - started; resolve() })
  })))
  return { closed: closed.length, lastClosedAfterMs: last }
}

/**
 * `clients` sessions each send `subscribes` SUBSCRIBE packets of `filters` filters, pipelined, and
 * wait for every SUBACK. Returns the SUBACKs received and how long it took.
 */
export async function subscribeStorm(port: number, clients: number, subscribes: number, filters: number): Promise<{ subacks: number; filters: number; seconds: number }> {
  const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
  const sockets = await openIdleSessions(port, clients, 100)
  const started = performance.now()
  let subacks = 0
  await Promise.all(sockets.map((socket, c) => new Promise<void>((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0)
    let mine = 0
    socket.on('data', (d: Buffer) => {
      pending = pending.length === 0 ? d : Buffer.concat([pending, d])
      // Count SUBACK frames (type 9): fixed header 0x90, one-byte remaining length here.
      while (pending.length >= 2 && pending.length >= 2 + pending[1]!) {
        if (pending[0] === 0x90) { mine++; subacks++ }
        pending = pending.subarray(2 + pending[1]!)
      }
      if (mine === subscribes) resolve()
    })
    socket.once('close', () => reject(new Error(`session ${c} closed after ${mine} SUBACKs`)))
    const frames: Buffer[] = []
    for (let s = 0; s < subscribes; s++) {
      frames.push(generate({ cmd: 'subscribe', messageId: s + 1, subscriptions: Array.from({ length: filters }, (_, f) => ({ topic: `storm/${run}/${c}/${s}/${f}/+`, qos: 1 as const })) }))
    }
    socket.write(Buffer.concat(frames))
  })))
  const seconds = (performance.now() - started) / 1000
  await closeAll(sockets)
  return { subacks, filters: subacks * filters, seconds }
}

export const MiB = 1024 * 1024

/** This process's soft open-file limit (Node raises it to the hard limit at start). */
export function ownFileLimit(): number {
  return Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024)
}

/** Sessions that fit both in Moat's limit (two sockets each) and in this process's (one each), with room to spare. */
export function idleCapacity(moat: MoatChild): number {
  return Math.min(moat.sessionCapacity, ownFileLimit() - 500)
}
