/**
 * A real redis-server (Debian's package) on a free port, without persistence, that a test can stop
 * and start again on the same port (a Redis outage, then its return: empty, as after a restart).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { freePort } from './mosquitto.js'

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server']

export function redisServerPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null
}

export class RedisServer {
  readonly host = '127.0.0.1'
  private child: ChildProcess | null = null

  constructor(readonly port: number, private readonly path: string) {}

  get url(): string {
    return `redis://${this.host}:${this.port}`
  }

  get running(): boolean {
    return this.child !== null
  }

  /** Starts (again) on the same port; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.child !== null) return
    const child = spawn(this.path, ['--port', String(this.port), '--bind', this.host, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        output += d
        if (output.includes('Ready to accept connections')) {
          child.stdout!.off('data', onData)
          resolve()
        }
      }
      child.stdout!.on('data', onData)
      child.stderr!.on('data', (d: Buffer) => { output += d })
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output}`)))
    })
    child.stdout!.resume()
  }

  /** Stops it (SIGKILL: an outage, not a graceful shutdown); resolves once the process is gone. */
  async stop(): Promise<void> {
    const child = this.child
    if (child === null) return
    this.child = null
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
    }
  }
}

export async function startRedis(): Promise<RedisServer> {
  const path = redisServerPath()
  if (path === null) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run does it)')
  const server = new RedisServer(await freePort(), path)
  await server.start()
  return server
}
