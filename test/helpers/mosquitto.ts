/**
 * A real Mosquitto broker for a test file: its own process, config and free port, with its log
 * (log_type all) kept so tests can see what the broker received.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/local/bin/mosquitto']

export function mosquittoPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null
}

export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export class MosquittoProcess {
  readonly host = '127.0.0.1'
  readonly logs: string[] = []
  private readonly listeners = new Set<() => void>()
  private partial = ''

  constructor(readonly port: number, private child: ChildProcess, private readonly dir: string) {
    this.attach(child)
  }

  private attach(child: ChildProcess): void {
    const onData = (data: Buffer): void => {
      const text = this.partial + data.toString()
      const lines = text.split('\n')
      this.partial = lines.pop()!
      // Drop the "1700000000: " timestamp prefix.
      for (const line of lines) this.logs.push(line.replace(/^\d+: /, ''))
      for (const wake of this.listeners) wake()
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
  }

  /** Resolves with the first log line (from the start) matching `re`. */
  waitForLog(re: RegExp, timeoutMs = 5000): Promise<string> {
    return this.waitForLogAfter(0, re, timeoutMs)
  }

  /** Freezes the broker process (SIGSTOP): it reads nothing until resume(). */
  freeze(): void {
    this.child.kill('SIGSTOP')
  }

  resume(): void {
    this.child.kill('SIGCONT')
  }

  /** Whether the broker process is running (not stopped by terminate()/kill()/stop()). */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /**
   * Stops the broker the way an operator does (SIGTERM): it closes its clients and, with
   * `persistence: true`, writes its store. The config, store and port stay for restart().
   */
  async terminate(): Promise<void> {
    const from = this.logs.length
    await this.signal('SIGTERM')
    // A store that could not be written would turn a persistence test into a test of nothing.
    const failed = this.logs.slice(from).find((l) => /^Error saving/.test(l))
    if (failed !== undefined) throw new Error(`mosquitto could not save its store: ${this.logs.slice(from).join('\n')}`)
  }

  /** Kills the broker outright (SIGKILL): no goodbye to clients, nothing saved. restart() may follow. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL')
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    if (!this.running) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill(signal)
    this.resume() // a frozen process handles its signal only once thawed (SIGKILL needs no thaw)
    await exited
  }

  /** Starts the broker again with the same config, port and (with persistence) store. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('mosquitto is still running: terminate() or kill() it first')
    const binary = mosquittoPath()!
    const startedAt = this.logs.length
    this.child = spawn(binary, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.attach(this.child)
    const child = this.child
    await Promise.race([
      this.waitForLogAfter(startedAt, /Opening ipv4 listen socket on port \d+|running/, 10_000),
      new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`mosquitto exited with ${code} on restart: ${this.logs.slice(startedAt).join('\n')}`)))),
    ])
    await waitForPort(this.port)
  }

  /** Like waitForLog, for lines logged after the first `from` lines. */
  waitForLogAfter(from: number, re: RegExp, timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = this.logs.slice(from).find((l) => re.test(l))
        if (line === undefined) return false
        cleanup()
        resolve(line)
        return true
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`mosquitto never logged ${re}; last lines:\n${this.logs.slice(-20).join('\n')}`))
      }, timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        this.listeners.delete(wake)
      }
      const wake = (): void => { check() }
      if (!check()) this.listeners.add(wake)
    })
  }

  async stop(): Promise<void> {
    this.resume()
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      this.child.kill('SIGKILL')
      await exited
    }
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export interface MosquittoOptions {
  /** Default true. False: clients must log in (add a `password_file` line to `config`). */
  allowAnonymous?: boolean
  /** Extra mosquitto.conf lines, e.g. `password_file /tmp/x/passwd`. */
  config?: string[]
  /** Lines right after the `listener` line (e.g. cafile/certfile/keyfile for a TLS listener). */
  listenerLines?: readonly string[]
  /** Listen on this port (e.g. one a Moat already points at) instead of a free one. */
  port?: number
  /** No debug lines (no per-packet lines: load tests and benchmarks); connection lines stay unless `connectionMessages: false`. received() then sees only connects. */
  quiet?: boolean
  connectionMessages?: boolean
  /** `persistence true` with its store in the broker's temp dir, so terminate() + restart() keeps sessions and queued messages. */
  persistence?: boolean
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoProcess> {
  const binary = mosquittoPath()
  if (binary === null) throw new Error('mosquitto is not installed (apt-get install mosquitto)')
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'moat-mosquitto-'))
    const conf = join(dir, 'mosquitto.conf')
    const store = join(dir, 'store')
    if (options.persistence === true) {
      // Started as root, Mosquitto drops to the `mosquitto` user before it writes its store.
      mkdirSync(store)
      chmodSync(dir, 0o755)
      chmodSync(store, 0o777)
    }
    writeFileSync(conf, [
      `listener ${port} 127.0.0.1`,
      ...(options.listenerLines ?? []),
      `allow_anonymous ${options.allowAnonymous === false ? 'false' : 'true'}`,
      ...(options.persistence === true ? ['persistence true', `persistence_location ${store}/`, 'autosave_interval 0'] : ['persistence false']),
      'log_dest stderr', // unbuffered: stdout to a pipe is block-buffered
      ...(options.quiet === true
        ? ['log_type error', 'log_type warning', 'log_type notice', 'log_type information']
        : ['log_type all']),
      `connection_messages ${options.connectionMessages === false ? 'false' : 'true'}`,
      'max_queued_messages 10000',
      ...(options.config ?? []),
      '',
    ].join('\n'))
    const child = spawn(binary, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    const broker = new MosquittoProcess(port, child, dir)
    try {
      await Promise.race([
        broker.waitForLog(/Opening ipv4 listen socket on port \d+|running/, 5000),
        new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: ${broker.logs.join('\n')}`)))),
      ])
      await waitForPort(port)
      return broker
    } catch (err) {
      await broker.stop()
      if (attempt === 4 || options.port !== undefined) throw err
    }
  }
  throw new Error('unreachable')
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`mosquitto port ${port} never opened`)
}
