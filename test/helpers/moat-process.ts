/**
 * A Moat as a separate process, the way an operator runs it: `node dist/cli.js run -c FILE`
 * (dist is built by test/global-setup.ts). Its JSON log lines are kept; the ports it bound
 * (port 0 in the config) are read from its `listening` / `admin_listening` lines.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The checkout (where package.json is): from test/helpers, or from .bench-dist/test/helpers when a bench compiled it. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}
const root = projectRoot()
export const cliPath = join(root, 'dist/cli.js')

export interface StartOptions {
  /** A command Moat is started under, e.g. ['chrt', '-b', '0']: node and its arguments follow it. */
  readonly launcher?: readonly string[]
  /** Moat's environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
}

export interface LogLine {
  event?: string
  [key: string]: unknown
}

export class MoatProcess {
  readonly logs: LogLine[] = []
  port = 0
  adminPort = 0
  private readonly child: ChildProcess
  private output = ''
  private readonly wakers = new Set<() => void>()

  private constructor(child: ChildProcess) {
    this.child = child
    let partial = ''
    const onData = (d: Buffer): void => {
      this.output += d
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop()!
      for (const line of lines) {
        try {
          this.logs.push(JSON.parse(line) as LogLine)
        } catch {
          this.logs.push({ text: line })
        }
      }
      for (const wake of this.wakers) wake()
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
  }

  /** Writes `config` (JSON is YAML) to DIR/NAME and runs moat on it; resolves once it is ready. */
  static async start(dir: string, name: string, config: Record<string, unknown>, options: StartOptions = {}): Promise<MoatProcess> {
    const file = join(dir, name)
    writeFileSync(file, JSON.stringify(config, null, 2))
    const command = [...(options.launcher ?? []), process.execPath, cliPath, 'run', '-c', file]
    const moat = new MoatProcess(spawn(command[0]!, command.slice(1), { cwd: root, env: options.env ?? process.env }))
    await moat.waitForLog((l) => l.event === 'ready', 15_000)
    moat.port = Number(moat.logs.find((l) => l.event === 'listening')!.port)
    moat.adminPort = Number(moat.logs.find((l) => l.event === 'admin_listening')?.port ?? 0)
    return moat
  }

  /** The process id of Moat (a launcher such as chrt execs it: the same process). */
  get pid(): number {
    return this.child.pid!
  }

  /** Sends `signal` (e.g. SIGHUP: reload the config file). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal)
  }

  /** Resolves with the first log line (from the start) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = this.logs.find(match)
        if (line === undefined) return false
        cleanup()
        resolve(line)
        return true
      }
      const onExit = (): void => {
        cleanup()
        reject(new Error(`moat exited:\n${this.output}`))
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`moat never logged the line awaited; output:\n${this.output.slice(-4000)}`))
      }, timeoutMs)
      const wake = (): void => { check() }
      const cleanup = (): void => {
        clearTimeout(timer)
        this.wakers.delete(wake)
        this.child.off('exit', onExit)
      }
      if (check()) return
      this.wakers.add(wake)
      this.child.once('exit', onExit)
    })
  }

  /** The value of a series from /metrics: a metric's name, followed by its labels as /metrics prints them if it has any. */
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.adminPort}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith(name + ' '))
    return line === undefined ? NaN : Number(line.slice(name.length + 1))
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGTERM')
    await exited
  }
}
