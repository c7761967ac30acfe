/**
 * A real redis-server (Debian's package) on a free port, without persistence, that a test can stop
 * and start again on the same port (a Redis outage, then its return: empty, as after a restart).
 * Extra arguments make it a replica, a Sentinel (`--sentinel`) or a cluster node
 * (redis-sentinel.ts, redis-cluster.ts). Every server still running when the test process exits is
 * killed then, so a failed test leaves no redis-server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { freePort } from './mosquitto.js'

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server']

export function redisServerPath(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null
}

/** Servers started by this process and not stopped yet: killed at exit whatever happened to the test. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

export class RedisServer {
  readonly host = '127.0.0.1'
  private child: ChildProcess | null = null

  /** `args`: after the port, bind and no-persistence arguments (a config file for a Sentinel comes first). */
  constructor(readonly port: number, private readonly path: string, private readonly args: readonly string[] = [], private readonly first: readonly string[] = []) {}

  get url(): string {
    return `redis://${this.host}:${this.port}`
  }

  get running(): boolean {
    return this.child !== null
  }

  /** Starts (again) on the same port; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.child !== null) return
    const child = spawn(this.path, [...this.first, '--port', String(this.port), '--bind', this.host, '--save', '', '--appendonly', 'no', ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    running.add(child)
    child.once('exit', () => running.delete(child))
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        output += d
        if (output.includes('Ready to accept connections') || output.includes('Sentinel ID is')) {
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

/** The redis-server binary, or an error saying how to install it. */
export function requireRedisServer(): string {
  const path = redisServerPath()
  if (path === null) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run does it)')
  return path
}

export async function startRedis(): Promise<RedisServer> {
  const server = new RedisServer(await freePort(), requireRedisServer())
  await server.start()
  return server
}

/** One command to a server on loopback, on a short-lived connection (setting up and checking test servers). */
export async function redisCommand(port: number, args: readonly string[]): Promise<unknown> {
  const { Redis } = await import('ioredis')
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  try {
    await client.connect()
    return await client.call(args[0]!, ...args.slice(1))
  } finally {
    client.disconnect()
  }
}

/** Polls `check` every 100 ms until it holds; throws naming `what` (and the last error) after `timeoutMs`. */
export async function pollUntil(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown = null
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (err) {
      last = err
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting until ${what}${last === null ? '' : `: ${String(last)}`}`)
}
