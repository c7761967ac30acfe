/**
 * A real HAProxy (Debian's `haproxy`), in TCP mode, in front of the given servers: the load
 * balancer of the scale-out examples, started by a test on a free loopback port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './mosquitto.js'

export function haproxyPath(): string | null {
  for (const candidate of ['/usr/sbin/haproxy', '/usr/bin/haproxy']) {
    if (spawnSync(candidate, ['-v']).status === 0) return candidate
  }
  return null
}

export interface HaproxyProcess {
  readonly port: number
  stop(): Promise<void>
}

export interface HaproxyOptions {
  /** The servers behind it (host:port). */
  readonly servers: ReadonlyArray<{ host: string; port: number }>
  /** Send a PROXY v2 header to each server (send-proxy-v2). */
  readonly proxyV2?: boolean
  readonly balance?: 'roundrobin' | 'leastconn'
}

export async function startHaproxy(options: HaproxyOptions): Promise<HaproxyProcess> {
  const binary = haproxyPath()
  if (binary === null) throw new Error('haproxy is not installed (apt-get install haproxy; .ci/run installs it)')
  const dir = mkdtempSync(join(tmpdir(), 'moat-haproxy-'))
  const port = await freePort()
  const servers = options.servers.map((s, i) => `  server s${i} ${s.host}:${s.port}${options.proxyV2 === true ? ' send-proxy-v2' : ''}`)
  writeFileSync(join(dir, 'haproxy.cfg'), [
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend mqtt',
    `  bind 127.0.0.1:${port}`,
    '  default_backend moat',
    'backend moat',
    `  balance ${options.balance ?? 'roundrobin'}`,
    ...servers,
    '',
  ].join('\n'))
  const child: ChildProcess = spawn(binary, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  // Ready once it accepts TCP connections.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`)
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) break
    if (i > 100) throw new Error(`haproxy did not listen on ${port}: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    async stop() {
      child.kill('SIGTERM')
      await exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
