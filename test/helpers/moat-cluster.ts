/**
 * A running `moat` with `workers: N` (primary + workers), started as a user starts it
 * (node dist/cli.js, built by test/global-setup.ts): its parsed log lines and its admin endpoint.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const cli = join(root, 'dist/cli.js')

type LogLine = Record<string, unknown>

/** A running `moat` (primary + workers), its parsed log lines and its admin endpoint. */
export class MoatCluster {
  readonly lines: LogLine[] = []
  output = ''
  readonly exited: Promise<{ code: number | null; signal: string | null }>
  private partial = ''
  onLine: ((line: LogLine) => void) | null = null

  constructor(readonly child: ChildProcess) {
    const onData = (d: Buffer): void => {
      this.output += d
      const text = this.partial + d.toString()
      const parts = text.split('\n')
      this.partial = parts.pop()!
      for (const line of parts) {
        let parsed: LogLine
        try {
          parsed = JSON.parse(line) as LogLine
        } catch {
          continue // not a log line
        }
        this.lines.push(parsed)
        this.onLine?.(parsed)
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    // 'close', not 'exit': every line the primary and its workers wrote (they share the pipe) has been read.
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  }

  static async start(file: string, workers = 2): Promise<MoatCluster> {
    const moat = new MoatCluster(spawn(process.execPath, [cli, '--config', file], { cwd: root }))
    await Promise.race([
      new Promise<void>((resolve) => { moat.onLine = (l) => { if (l.event === 'ready' && l.workers === workers) resolve() } }),
      moat.exited.then(({ code }) => { throw new Error(`moat exited (${code}) before it was ready:\n${moat.output}`) }),
    ])
    moat.onLine = null
    return moat
  }

  find(match: LogLine): LogLine | undefined {
    return this.lines.find((l) => Object.entries(match).every(([k, v]) => l[k] === v))
  }

  all(match: LogLine): LogLine[] {
    return this.lines.filter((l) => Object.entries(match).every(([k, v]) => l[k] === v))
  }

  port(listener: string): number {
    const line = this.lines.find((l) => l.event === 'listening' && l.listener === listener)
    return line!.port as number
  }

  get adminPort(): number {
    return this.find({ event: 'admin_listening' })!.port as number
  }

  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/metrics`)
    return res.text()
  }

  /** The value of one series (0 when absent), e.g. value('moat_packets_total{direction="client_to_broker",packet_type="publish"}'). */
  async value(series: string): Promise<number> {
    const text = await this.metrics()
    const line = text.split('\n').find((l) => l.startsWith(series + ' '))
    return line === undefined ? 0 : Number(line.slice(series.length + 1))
  }

  /** SIGKILL to the primary (its workers follow once their channel to it closes), unless it has exited; resolves when its output is closed. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await this.exited
  }

  /** The pid of worker `id` now (from its latest worker_ready line). */
  workerPid(id: number): number {
    const ready = this.all({ event: 'worker_ready', worker: id })
    return ready[ready.length - 1]!.pid as number
  }
}

