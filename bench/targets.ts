/**
 * The things the benchmark compares, each started fresh for a scenario: the broker reached
 * directly, HAProxy in TCP mode in front of it, a naive Node pipe proxy, and Moat with a realistic
 * policy in front of it; and the same four with TLS between the clients and the first hop
 * (Mosquitto's own TLS listener, HAProxy and a Node pass-through terminating TLS, Moat's mqtts
 * listener; behind a proxy the broker is reached in plain TCP). Broker and proxy are pinned to one
 * core (`taskset`), the load generator to the other; file descriptor limits are raised with
 * `prlimit` as far as the hard limit allows.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { aclYaml } from './policy.js'
import { freePort, listening, start } from './processes.js'
import type { Endpoint } from './loadgen.js'
import { serverCerts, type ServerCerts } from './tls.js'

/**
 * Moat's built CLI (this file runs from .bench-dist/bench/); BENCH_MOAT_DIST=DIR: another build's
 * (`cp -r dist .ab-dist` before a change, then runs of each, alternated, compare the two).
 */
const CLI = process.env.BENCH_MOAT_DIST === undefined
  ? fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
  : resolve(process.env.BENCH_MOAT_DIST, 'cli.js')
/**
 * How Moat is launched: the node options of its `moat` command's shebang (`#!/usr/bin/env -S node
 * OPTIONS`, as `npm start` and the Dockerfile; docs/tuning.md), read from the built CLI so that
 * the bench starts Moat as it is shipped.
 */
const MOAT_NODE_FLAGS = readFileSync(CLI, 'utf8').split('\n', 1)[0]!.match(/^#!.*?\bnode((?:\s+--\S+)*)\s*$/)?.[1]?.trim().split(/\s+/).filter((f) => f !== '') ?? ['--no-memory-reducer']

export const PLAIN_KINDS = ['direct', 'haproxy', 'node-pipe', 'moat', 'moat-acl5000'] as const
export const TLS_KINDS = ['direct-tls', 'haproxy-tls', 'node-tls-pipe', 'moat-tls'] as const
export type TargetKind = (typeof PLAIN_KINDS)[number] | (typeof TLS_KINDS)[number]
export type Transport = 'plain' | 'tls'

export const transportOf = (kind: TargetKind): Transport => ((TLS_KINDS as readonly string[]).includes(kind) ? 'tls' : 'plain')

/** The same target over the other transport (moat-acl5000 has no TLS counterpart: null). */
export function kindFor(kind: TargetKind, transport: Transport): TargetKind | null {
  const plain = kind === 'node-tls-pipe' ? 'node-pipe' : kind.replace(/-tls$/, '')
  if (transport === 'plain') return plain as TargetKind
  return plain === 'moat-acl5000' ? null : plain === 'node-pipe' ? 'node-tls-pipe' : (`${plain}-tls` as TargetKind)
}

export interface Placement {
  /** Cores for broker and proxy, e.g. '0'. */
  readonly serverCores: string
  /** Open-file limit for the servers (capped by the hard limit). */
  readonly nofile: number
  /** How many local addresses the proxies dial the broker from (127.0.1.1 …); 0: the system's choice. */
  readonly upstreamSources: number
  /**
   * The proxies' scheduling policy (never the broker's). `batch`: SCHED_BATCH (`chrt -b 0`), whose
   * wakeups do not preempt the running task: the broker is not interrupted for every message it
   * writes, and the proxy reads what piled up in one go.
   */
  readonly proxyScheduling: 'normal' | 'batch'
  /** `--coalescing WAIT[,ABOVE]`: Moat's `coalescing` (`0` turns it off; `300us,1/s` always waits); null: Moat's default. */
  readonly moatCoalescing?: string | null
  /**
   * `--malloc`: the C allocator of the Node proxies (Moat and the Node pass-through). `jemalloc`:
   * libjemalloc preloaded with its background purging thread (docs/tuning.md); `libc` (or
   * absent): glibc's malloc.
   */
  readonly nodeMalloc?: NodeMalloc
}

export type NodeMalloc = 'jemalloc' | 'libc'

/** The environment a Node proxy runs with under `--malloc jemalloc`: the two variables of docs/tuning.md (BENCH_MALLOC_CONF replaces the second's value). */
export const JEMALLOC_ENV = ['LD_PRELOAD=libjemalloc.so.2', `MALLOC_CONF=${process.env.BENCH_MALLOC_CONF ?? 'background_thread:true'}`] as const

/** Whether libjemalloc.so.2 can be preloaded here (Debian: libjemalloc2). */
export function jemallocAvailable(): boolean {
  try {
    return execFileSync('env', [...JEMALLOC_ENV, 'cat', '/proc/self/maps'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('libjemalloc')
  } catch {
    return false
  }
}

/** `command args` under `env` with the proxy allocator's variables (nothing added for glibc's). */
function withMalloc(placement: Placement, command: string, args: string[]): [string, string[]] {
  return placement.nodeMalloc === 'jemalloc' ? ['env', [...JEMALLOC_ENV, command, ...args]] : [command, args]
}

export interface RunningTarget {
  readonly kind: TargetKind
  readonly endpoint: Endpoint
  /** The broker's own port (what the proxy dials; the endpoint itself when direct). */
  readonly brokerPort: number
  /** The broker's port speaks TLS (direct-tls): kernel byte counts there are TLS records, not MQTT frames. */
  readonly brokerTls: boolean
  readonly brokerPid: number
  /** The proxy's pid; null for the direct broker. */
  readonly proxyPid: number | null
  /** Moat's admin port (its /metrics); null for the other targets. */
  readonly adminPort: number | null
  stop(): Promise<void>
}

export const BENCH_PASSWORD = 'bench-secret'
/** User names in the password file; clients use them in turn. */
export const BENCH_USERS = 100
export const benchUser = (i: number): string => `user${i % BENCH_USERS}`

/** The open-file limits of this process: [soft, hard] (prlimit may raise a child's soft limit up to hard). */
export function nofileLimits(): [number, number] {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  const fields = line?.trim().split(/\s+/) ?? []
  const value = (v: string | undefined): number => (v === undefined || v === 'unlimited' ? 1_048_576 : Number(v))
  return [value(fields[3]), value(fields[4])]
}

export function hardNofile(): number {
  return nofileLimits()[1]
}

/** Raises this process's own open-file limit (the load generator holds one per client); false when not allowed. */
export function raiseOwnNofile(wanted: number): boolean {
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function pinned(placement: Placement, command: string, args: string[], proxy = true): [string, string[]] {
  const nofile = Math.min(placement.nofile, hardNofile())
  const sched = proxy && placement.proxyScheduling === 'batch' ? ['chrt', '-b', '0'] : []
  return ['prlimit', [`--nofile=${nofile}:${nofile}`, 'taskset', '-c', placement.serverCores, ...sched, command, ...args]]
}


/** Pid of the real server under `prlimit … taskset …` (both exec, so it is the child's pid). */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    // Profiling (BENCH_NODE_ARGS): SIGTERM, so that Node writes the profile on its way out.
    if (process.env.BENCH_NODE_ARGS === undefined) return void child.kill('SIGKILL')
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
  })
}

/** Writes the password file once: BENCH_USERS users, mosquitto_passwd `$7$` hashes. */
export function writePasswd(dir: string): string {
  const file = join(dir, 'passwd')
  if (existsSync(file)) return file
  const plain = join(dir, 'passwd.plain')
  writeFileSync(plain, Array.from({ length: BENCH_USERS }, (_, i) => `${benchUser(i)}:${BENCH_PASSWORD}`).join('\n') + '\n')
  execFileSync('mosquitto_passwd', ['-U', plain])
  writeFileSync(file, readFileSync(plain))
  return file
}

/**
 * Mosquitto's TLS listener. `set_tcp_nodelay`: without it Mosquitto writes its part of the
 * handshake, the session tickets and the CONNACK as separate small segments, and Nagle holds the
 * CONNACK until the client's delayed ACK (40 ms a CONNECT). `user root`: Mosquitto started as root
 * reads its certificates after dropping to its own user, who cannot read the bench's private
 * temporary directory.
 */
function tlsListener(certs: ServerCerts): string[] {
  return [`certfile ${certs.certFile}`, `keyfile ${certs.keyFile}`, 'set_tcp_nodelay true', ...(process.getuid?.() === 0 ? ['user root'] : [])]
}

/** Mosquitto; `certs`: its listener speaks TLS (its own TLS listener, OpenSSL's defaults: TLS 1.2 and 1.3). */
async function startMosquitto(dir: string, placement: Placement, certs: ServerCerts | null = null): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const conf = join(dir, `mosquitto-${port}.conf`)
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, ...(certs === null ? [] : tlsListener(certs)), 'allow_anonymous true', 'persistence false', 'max_connections -1',
    // A QoS 1 subscriber may have this many deliveries unacknowledged (default 20: the RTT would set the rate).
    'max_queued_messages 100000', 'max_inflight_messages 1000', 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type notice', 'log_type information', '',
  ].join('\n'))
  const [cmd, args] = pinned(placement, '/usr/sbin/mosquitto', ['-c', conf], false)
  const { child } = await start(cmd, args, /running/)
  return { child, port }
}

/** HAProxy 2.x in TCP mode; it reads the first packet only to check that it is an MQTT CONNECT. `certs`: it terminates TLS. */
async function startHaproxy(dir: string, placement: Placement, brokerPort: number, certs: ServerCerts | null = null): Promise<{ child: ChildProcess; port: number }> {
  if (!existsSync('/usr/sbin/haproxy')) {
    console.error('haproxy is missing: installing Debian\'s package')
    execFileSync('apt-get', ['install', '-y', '-q', 'haproxy'], { stdio: 'inherit' })
  }
  const port = await freePort()
  const servers = placement.upstreamSources === 0
    ? [`  server s0 127.0.0.1:${brokerPort}`]
    : Array.from({ length: placement.upstreamSources }, (_, i) => `  server s${i} 127.0.0.1:${brokerPort} source 127.0.1.${i + 1}`)
  const conf = join(dir, `haproxy-${port}.cfg`)
  writeFileSync(conf, [
    'global', `  maxconn ${Math.floor(Math.min(placement.nofile, hardNofile()) / 2) - 100}`, '  nbthread 1', '',
    'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 1h', '  timeout server 1h', '',
    'frontend mqtt', `  bind 127.0.0.1:${port}${certs === null ? '' : ` ssl crt ${certs.combinedFile}`}`, '  tcp-request inspect-delay 5s',
    '  tcp-request content reject unless { req.payload(0,0),mqtt_is_valid }', '  default_backend broker', '',
    'backend broker', '  balance roundrobin', ...servers, '',
  ].join('\n'))
  const [cmd, args] = pinned(placement, '/usr/sbin/haproxy', ['-db', '-f', conf])
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += d })
  child.once('exit', (code) => { if (code !== null && code !== 0) console.error(`haproxy exited ${code}: ${err}`) })
  await listening(port)
  return { child, port }
}

function coalescingYaml(option: string): string {
  const [wait, above] = option.split(',')
  return `coalescing: { wait: ${wait}${above === undefined ? '' : `, above: ${above}`} }`
}

/** Moat's config: file auth (cached), ACL with placeholders, payload caps, generous rates, metrics. `certs`: an mqtts listener. */
export function moatYaml(brokerPort: number, adminPort: number, aclRules: number, placement: Placement, listenPort = 0, certs: ServerCerts | null = null): string {
  const sources = Array.from({ length: placement.upstreamSources }, (_, i) => `127.0.1.${i + 1}`)
  return [
    certs === null
      ? `listeners: [{ name: bench, protocol: mqtt, host: 127.0.0.1, port: ${listenPort} }]`
      : `listeners: [{ name: bench, protocol: mqtts, host: 127.0.0.1, port: ${listenPort}, tls: { cert: ${certs.certFile}, key: ${certs.keyFile} } }]`,
    sources.length === 0 ? `upstream: { host: 127.0.0.1, port: ${brokerPort} }` : `upstream: { host: 127.0.0.1, port: ${brokerPort}, sourceAddresses: [${sources.join(', ')}] }`,
    `admin: { host: 127.0.0.1, port: ${adminPort} }`,
    // BENCH_MOAT_LOG: Moat's log level (default info: a line per connection, to a pipe this process reads).
    `log: { level: ${process.env.BENCH_MOAT_LOG ?? 'info'} }`,
    // --sched batch: Moat sets SCHED_BATCH itself, as an operator would (the other proxies run under chrt).
    ...(placement.proxyScheduling === 'batch' ? ['scheduling: batch'] : []),
    ...(placement.moatCoalescing == null ? [] : [coalescingYaml(placement.moatCoalescing)]),
    'auth:',
    '  lockout: false',
    '  backends: [{ type: file, path: passwd, cache: { ttl: 1h, negativeTtl: 5s, max: 10000 } }]',
    'limits:',
    '  maxPacketSize: 1MiB',
    '  maxPayload: 256KiB',
    '  payload: [{ topic: "camera/#", max: 1MiB }]',
    '  messageRate: 100000/s',
    '  byteRate: 100MiB/s',
    '  connectTimeout: 30s',
    aclYaml(aclRules),
  ].join('\n')
}

/** BENCH_NODE_ARGS: extra node options for the Node proxies (Moat, node-pipe), e.g. "--cpu-prof --cpu-prof-dir=/tmp/p" (profiling a scenario). */
function nodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
}

/** The naive Node proxy (`pipe-proxy.mjs`; `tls-pipe-proxy.mjs` with `certs`): the floor of what a Node proxy costs here. */
async function startNodePipe(placement: Placement, brokerPort: number, certs: ServerCerts | null = null): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort()
  const script = fileURLToPath(new URL(`../../bench/${certs === null ? 'pipe-proxy' : 'tls-pipe-proxy'}.mjs`, import.meta.url))
  const [cmd, args] = pinned(placement, ...withMalloc(placement, process.execPath, [...nodeArgs(), script, String(port), String(brokerPort), ...(certs === null ? [] : [certs.certFile, certs.keyFile])]))
  const { child } = await start(cmd, args, /listening/)
  if (process.env.BENCH_NODE_ARGS !== undefined) {
    child.stdout!.on('data', (d: Buffer) => process.stderr.write(`[node-pipe] ${d}`))
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[node-pipe] ${d}`))
  }
  child.stdout!.resume()
  child.stderr!.resume()
  return { child, port }
}

async function startMoat(dir: string, placement: Placement, brokerPort: number, aclRules: number, certs: ServerCerts | null = null, cli = CLI): Promise<{ child: ChildProcess; port: number; adminPort: number }> {
  const adminPort = await freePort()
  const conf = join(dir, `moat-${adminPort}.yaml`)
  // Without info lines (BENCH_MOAT_LOG=warn …) there is no "listening" line to read the port from: a fixed port, polled.
  const quiet = (process.env.BENCH_MOAT_LOG ?? 'info') !== 'info'
  const fixedPort = quiet ? await freePort() : 0
  writeFileSync(conf, moatYaml(brokerPort, adminPort, aclRules, placement, fixedPort, certs))
  const [cmd, args] = pinned({ ...placement, proxyScheduling: 'normal' }, ...withMalloc(placement, process.execPath, [...MOAT_NODE_FLAGS, ...nodeArgs(), cli, '--config', conf]))
  if (quiet) {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout!.on('data', (d: Buffer) => process.stderr.write(`[moat] ${d}`))
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[moat] ${d}`))
    await listening(fixedPort)
    return { child, port: fixedPort, adminPort }
  }
  const { child, match } = await start(cmd, args, /"event":"listening".*?"port":(\d+)/)
  if (process.env.BENCH_DEBUG) {
    child.stdout!.on('data', (d: Buffer) => process.stderr.write(`[moat] ${d}`))
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`[moat] ${d}`))
  }
  child.stdout!.resume()
  child.stderr!.resume()
  return { child, port: Number(match[1]), adminPort }
}

/** `moatCli`: the `dist/cli.js` the Moat targets run (another build's, for bench/moat-ab.ts). */
export async function startTarget(kind: TargetKind, dir: string, placement: Placement, moatCli = CLI): Promise<RunningTarget> {
  writePasswd(dir)
  const certs = transportOf(kind) === 'tls' ? serverCerts(dir) : null
  const broker = await startMosquitto(dir, placement, kind === 'direct-tls' ? certs : null)
  if (process.env.BENCH_DEBUG) broker.child.stderr!.on('data', (d: Buffer) => { if (/drop|warn|disconnect|closed|timeout/i.test(String(d))) process.stderr.write(`[mosquitto] ${d}`) })
  broker.child.stdout!.resume()
  broker.child.stderr!.resume()
  let proxy: { child: ChildProcess; port: number; adminPort?: number } | null = null
  try {
    if (kind === 'haproxy') proxy = await startHaproxy(dir, placement, broker.port)
    else if (kind === 'node-pipe') proxy = await startNodePipe(placement, broker.port)
    else if (kind === 'moat') proxy = await startMoat(dir, placement, broker.port, 50, null, moatCli)
    else if (kind === 'moat-acl5000') proxy = await startMoat(dir, placement, broker.port, 5000, null, moatCli)
    else if (kind === 'haproxy-tls') proxy = await startHaproxy(dir, placement, broker.port, certs)
    else if (kind === 'node-tls-pipe') proxy = await startNodePipe(placement, broker.port, certs)
    else if (kind === 'moat-tls') proxy = await startMoat(dir, placement, broker.port, 50, certs, moatCli)
  } catch (err) {
    await stopChild(broker.child)
    throw err
  }
  return {
    kind,
    endpoint: { host: '127.0.0.1', port: proxy?.port ?? broker.port, ...(certs === null ? {} : { tls: { caFile: certs.caFile } }) },
    brokerPort: broker.port,
    brokerTls: kind === 'direct-tls',
    brokerPid: broker.child.pid!,
    proxyPid: proxy?.child.pid ?? null,
    adminPort: proxy?.adminPort ?? null,
    async stop() {
      if (proxy !== null) await stopChild(proxy.child)
      await stopChild(broker.child)
    },
  }
}

/**
 * Moat's counters from its /metrics over the whole run (warm-up included): coalescing waits and
 * seconds asleep in them, and the connections it refused, in all and by reason (e.g.
 * "tls_handshake_failed 3"; empty when none).
 */
export async function moatCounters(adminPort: number): Promise<{ coalescingWaits: number; coalescingWaitSeconds: number; moatRefused: number; moatRefusedReasons: string }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const lines = text.split('\n')
  const value = (name: string): number => Number(lines.find((l) => l.startsWith(`${name} `))?.slice(name.length + 1) ?? NaN)
  const refused = lines.map((l) => /^moat_connections_refused_total\{.*?reason="([^"]*)".*\} (\d+)/.exec(l)).filter((m) => m !== null)
  return {
    coalescingWaits: value('moat_coalescing_waits_total'),
    coalescingWaitSeconds: value('moat_coalescing_wait_seconds_total'),
    moatRefused: refused.reduce((n, m) => n + Number(m[2]), 0),
    moatRefusedReasons: refused.map((m) => `${m[1]} ${m[2]}`).join(', '),
  }
}

/** Resident set size of a process in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}
