/**
 * TLS session resumption from the client side, with three implementations: Node's `tls.connect`
 * (`session`, `isSessionReused()`), `openssl s_client` (`-sess_out` / `-sess_in`), and Python's
 * `ssl` (`session=`, `session_reused`). Each dials, reports whether the server resumed, and keeps the
 * session for the next dial. Also: the handshake counts of a Moat's /metrics, and ticket seeds a
 * test turns by hand.
 */
import { execFile } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import type { TicketSeeds } from '../../src/listeners/ticket-keys.js'
import { randomBytes } from 'node:crypto'

export interface Dial {
  /** The server resumed the session offered (false without one). */
  readonly reused: boolean
  /** The session to offer next time: a new one, or the one offered when it was resumed. */
  readonly session: Buffer | null
  readonly protocol: string | null
  /** The TLS error, when the handshake failed. */
  readonly error: string | null
  /** The connection ended before the client closed it (the server refused it after the handshake). */
  readonly closedByServer: boolean
}

/**
 * One handshake with Node's client. After a full handshake it waits for the session (TLS 1.3 sends
 * its tickets after the handshake); a resumed one keeps the session it offered. `hold` keeps the
 * connection open that long after the handshake (to see the server close it).
 */
export function dial(port: number, ca: Buffer, options: tls.ConnectionOptions = {}, hold = 0): Promise<Dial> {
  return new Promise((resolve) => {
    let session: Buffer | null = null
    let reused = false
    let protocol: string | null = null
    let error: string | null = null
    let secured = false
    let closedByServer = false
    let settled = false
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...options })
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // end, not destroy: the client's last handshake message must reach the server.
      socket.end()
      setTimeout(() => socket.destroy(), 1000).unref()
      resolve({ reused, session: session ?? (reused ? options.session ?? null : null), protocol, error, closedByServer })
    }
    const ready = (): void => {
      if (hold === 0) finish()
      else setTimeout(finish, hold)
    }
    const timer = setTimeout(finish, 5000)
    socket.on('session', (s: Buffer) => {
      session = s
      if (secured) ready()
    })
    socket.on('secureConnect', () => {
      secured = true
      reused = socket.isSessionReused()
      protocol = socket.getProtocol()
      if (reused || session !== null) ready()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message
      finish()
    })
    socket.on('end', () => { closedByServer = true })
    socket.on('close', () => {
      if (!settled && secured) closedByServer = true
      finish()
    })
    socket.resume()
  })
}

/**
 * `openssl s_client` once, saving its session to `sessionFile` (`-sess_out`) or offering it
 * (`-sess_in`); resolves with whether it resumed ("Reused" rather than "New"). Standard input stays
 * open a moment: TLS 1.3 tickets come after the handshake.
 */
export function sClient(port: number, caFile: string, sessionFile: string, mode: 'out' | 'in', args: string[] = []): Promise<{ reused: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, `-sess_${mode}`, sessionFile, ...args], { timeout: 10_000 }, (_err, stdout, stderr) => {
      const output = stdout + stderr
      resolve({ reused: /^Reused, TLSv1\.[23]/m.test(output), output })
    })
    setTimeout(() => child.stdin!.end(), 500)
  })
}

const PYTHON_CLIENT = `
import json, socket, ssl, sys, time
ports, cafile, version, count = [int(p) for p in sys.argv[1].split(',')], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
session, reused = None, []
for i in range(count):
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', ports[i % len(ports)])), server_hostname='localhost', session=session)
    reused.append(s.session_reused)
    s.settimeout(0.3)
    try:
        s.recv(1)  # TLS 1.3 tickets come after the handshake; the server sends nothing else
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    session = s.session
    s.close()
print(json.dumps(reused))
`

function python(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
}

/**
 * Python's ssl dials `count` times (the ports in turn), each time offering the session of the dial
 * before; resolves with session_reused of each.
 */
export function pythonDials(ports: number | number[], caFile: string, version: 'TLSv1_2' | 'TLSv1_3', count: number, dir: string): Promise<boolean[]> {
  const script = join(dir, 'resume.py')
  writeFileSync(script, PYTHON_CLIENT)
  return new Promise((resolve, reject) => {
    execFile(python(), [script, [ports].flat().join(','), caFile, version, String(count)], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`python failed: ${stderr}`))
      else resolve(JSON.parse(stdout) as boolean[])
    })
  })
}

/** `moat_tls_handshakes_total{listener,outcome}` from a /metrics text (0 when absent). */
export function handshakesIn(metrics: string, listener: string, outcome: 'full' | 'resumed'): number {
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('moat_tls_handshakes_total{')) continue
    if (line.includes(`listener="${listener}"`) && line.includes(`outcome="${outcome}"`)) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return 0
}

/** Ticket seeds a test replaces when it chooses (the timers of the real ones are unit-tested). */
export class ManualSeeds implements TicketSeeds {
  private readonly watched = new Map<string, { seed: Buffer; apply: (seed: Buffer) => void }>()

  watch(listener: string, _rotateMs: number, apply: (seed: Buffer) => void): void {
    const entry = this.watched.get(listener) ?? { seed: randomBytes(32), apply }
    entry.apply = apply
    this.watched.set(listener, entry)
    apply(entry.seed)
  }

  unwatch(listener: string): void {
    this.watched.delete(listener)
  }

  rotate(listener: string): void {
    const entry = this.watched.get(listener)!
    entry.seed = randomBytes(32)
    entry.apply(entry.seed)
  }
}
