/**
 * The demo's broker when Mosquitto is installed: this machine's `mosquitto` on a free loopback
 * port, with a config written to a temporary directory, stopped with the demo (and on exit). Its
 * output is kept, not printed, so it does not mix with Moat's log; it is shown when it fails.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'

/** Where Debian and most packages put it; not on a normal user's PATH. */
export const MOSQUITTO_FALLBACKS: readonly string[] = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto']

const START_TIMEOUT_MS = 5000
/** Lines of its output kept for an error message. */
const KEPT_LINES = 30

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The first `mosquitto` on `path` (a PATH value), else the first of `fallbacks` that exists; null when none. */
export function findMosquitto(path = process.env.PATH ?? '', fallbacks = MOSQUITTO_FALLBACKS): string | null {
  const onPath = path.split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, 'mosquitto'))
  return [...onPath, ...fallbacks].find(executable) ?? null
}

export class MosquittoFailed extends Error {
  constructor(message: string, readonly output: string) {
    super(message)
  }
}

export interface DemoMosquitto {
  readonly binary: string
  readonly port: number
  /** As it says at start (`2.0.11`), or null. */
  readonly version: string | null
  /** Called when it exits on its own, with the end of its output. */
  onUnexpectedExit: ((output: string) => void) | null
  stop(): Promise<void>
}

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export async function startMosquitto(binary: string): Promise<DemoMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-demo-'))
  const port = await freeLoopbackPort()
  const config = join(dir, 'mosquitto.conf')
  writeFileSync(config, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true', // only Moat reaches this port; the demo's policy is Moat's
    'persistence false',
    'log_dest stderr',
    'log_type error', 'log_type warning', 'log_type notice', 'log_type information',
    '',
  ].join('\n'))
  // Its own process group: a Ctrl-C in the terminal reaches the demo, which drains Moat first and
  // then stops the broker, rather than the broker going at once under Moat's clients.
  const child = spawn(binary, ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const lines: string[] = []
  const keep = (data: Buffer): void => {
    lines.push(...data.toString().split('\n').filter((l) => l !== ''))
    lines.splice(0, Math.max(0, lines.length - KEPT_LINES))
  }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  const output = (): string => lines.join('\n')
  const running = (): boolean => child.pid !== undefined && child.exitCode === null && child.signalCode === null
  const cleanUp = (): void => {
    if (running()) child.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
  // The demo ends without stop() (an error, process.exit): the broker goes with it.
  process.once('exit', cleanUp)
  let stopping = false

  const broker: DemoMosquitto = {
    binary,
    port,
    get version() {
      return /mosquitto version (\S+)/.exec(output())?.[1] ?? null
    },
    onUnexpectedExit: null,
    async stop() {
      stopping = true
      process.off('exit', cleanUp)
      if (running()) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
  child.once('exit', () => {
    if (!stopping) broker.onUnexpectedExit?.(output())
  })

  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null))
    child.once('error', resolve)
  })
  if (spawned !== null) {
    await broker.stop()
    throw new MosquittoFailed(`cannot run ${binary}: ${spawned.message}`, '')
  }
  const deadline = Date.now() + START_TIMEOUT_MS
  while (!(await accepts(port))) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      const why = child.exitCode !== null ? `exited with code ${child.exitCode}` : child.signalCode !== null ? `ended by ${child.signalCode}` : `did not listen within ${START_TIMEOUT_MS} ms`
      await broker.stop()
      throw new MosquittoFailed(`${binary} ${why}`, output())
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return broker
}
