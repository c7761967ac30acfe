/**
 * A real Mosquitto broker for a test file: its own process, config and free port, with its log
 * (log_type all) kept so tests can see what the broker received.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
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

  constructor(readonly port: number, private readonly child: ChildProcess, private readonly dir: string) {
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
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = this.logs.find((l) => re.test(l))
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

  /** Freezes the broker process (SIGSTOP): it reads nothing until resume(). */
  freeze(): void {
    this.child.kill('SIGSTOP')
  }

  resume(): void {
    this.child.kill('SIGCONT')
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
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoProcess> {
  const binary = mosquittoPath()
  if (binary === null) throw new Error('mosquitto is not installed (apt-get install mosquitto)')
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'moat-mosquitto-'))
    const conf = join(dir, 'mosquitto.conf')
    writeFileSync(conf, [
      `listener ${port} 127.0.0.1`,
      ...(options.listenerLines ?? []),
      `allow_anonymous ${options.allowAnonymous === false ? 'false' : 'true'}`,
      'persistence false',
      'log_dest stderr', // unbuffered: stdout to a pipe is block-buffered
      'log_type all',
      'connection_messages true',
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
      if (attempt === 4) throw err
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
