/**
 * What Redis-backed fleet-wide limits cost, against the same limits kept in process. Moat runs as
 * `node dist/cli.js` in front of Mosquitto, with a file backend (mosquitto_passwd, cached) and the
 * connection limits perUsername, perAddress and perAddressRate set high enough never to bite;
 * scenario "redis" adds `cluster.redis` (a local redis-server started here), so each CONNECT also
 * takes a rate token and two slots in Redis (3 round trips), and each close releases two.
 *
 * - CONNECTs/s: C clients loop TCP connect, CONNECT, CONNACK, DISCONNECT, close;
 * - messages/s: P publishers send QoS 0 PUBLISH as fast as TCP lets them, one subscriber counts
 *   deliveries (the per-packet path never calls Redis: this should not move).
 *
 *   npm run bench:redis -- [--seconds 5] [--clients 32] [--publishers 10]
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generate, parser as createParser } from 'mqtt-packet'
import { connectLoops, cpuSeconds, freePort, listening, sleep, start, type ConnectLoopResult } from './processes.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, clients: { type: 'string', default: '32' }, publishers: { type: 'string', default: '10' } } })
const SECONDS = Number(values.seconds)
const CLIENTS = Number(values.clients)
const PUBLISHERS = Number(values.publishers)
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-redis-'))

const credentials = { username: 'bench', password: Buffer.from('bench-secret') }

function connectFrame(clientId: string): Buffer {
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60, ...credentials })
}



function connects(port: number, pid: number): Promise<ConnectLoopResult> {
  const frame = connectFrame('')
  return connectLoops(port, pid, frame, CLIENTS, SECONDS)
}

async function messages(port: number, pid: number): Promise<{ deliveredPerSecond: number; cpuMicrosecondsPerMessage: number }> {
  let received = 0
  const sub = net.connect(port, '127.0.0.1')
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p) => { if (p.cmd === 'publish') received++ })
  sub.on('data', (d: Buffer) => parser.parse(d))
  sub.write(connectFrame(`bench-sub-${port}`))
  sub.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] }))
  await sleep(300)
  const frame = generate({ cmd: 'publish', topic: 'bench/load', payload: Buffer.alloc(64, 7), qos: 0, retain: false, dup: false })
  const batch = Buffer.concat(Array.from({ length: 16 }, () => frame))
  let stop = false
  const publishers = Array.from({ length: PUBLISHERS }, (_, i) => {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.write(connectFrame(`bench-pub-${port}-${i}`))
    const pump = (): void => {
      while (!stop) if (!s.write(batch)) return void s.once('drain', pump)
    }
    s.on('connect', () => setTimeout(pump, 200))
    return s
  })
  await sleep(1000)
  const cpu0 = cpuSeconds(pid)
  const r0 = received
  const t0 = process.hrtime.bigint()
  await sleep(SECONDS * 1000)
  const count = received - r0
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = cpuSeconds(pid) - cpu0
  stop = true
  for (const p of publishers) p.destroy()
  sub.destroy()
  await sleep(500)
  return { deliveredPerSecond: Math.round(count / elapsed), cpuMicrosecondsPerMessage: Number(((cpu / count) * 1e6).toFixed(2)) }
}

const brokerPort = await freePort()
writeFileSync(join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type information\nconnection_messages false\nmax_connections -1\n`)
const mosquitto = await start('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], /running|Opening ipv4/)
const redisPort = await freePort()
const redis = await start('/usr/bin/redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/)
execFileSync('mosquitto_passwd', ['-c', '-b', join(dir, 'passwd'), 'bench', 'bench-secret'])

const common = [
  'log: { level: warn }',
  'auth: { lockout: false, backends: [{ type: file, path: passwd, cache: { ttl: 1m, negativeTtl: 5s } }] }',
  'limits: { maxPacketSize: 1MiB, connections: { perUsername: 1000000, perAddress: 1000000, perAddressRate: 1000000/s } }',
].join('\n')
const scenarios: Array<[string, string]> = [
  ['local (in-process limits)', ''],
  ['redis (fleet-wide limits in Redis)', `cluster: { redis: { url: "redis://127.0.0.1:${redisPort}", prefix: bench } }`],
]

const results: Record<string, unknown> = {}
try {
  for (const [name, extra] of scenarios) {
    const file = join(dir, 'moat.yaml')
    const port = await freePort()
    writeFileSync(file, `listeners: [{ name: bench, protocol: mqtt, host: 127.0.0.1, port: ${port} }]\nupstream: { host: 127.0.0.1, port: ${brokerPort} }\n${common}\n${extra}\n`)
    const moat = spawn(process.execPath, ['dist/cli.js', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] })
    try {
      await listening(port)
      results[name] = { ...(await connects(port, moat.pid!)), ...(await messages(port, moat.pid!)) }
    } finally {
      moat.kill('SIGKILL')
      await sleep(300)
    }
  }
  console.log(JSON.stringify({
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    node: process.version,
    scenario: { clients: CLIENTS, publishers: PUBLISHERS, seconds: SECONDS, connectLoop: 'TCP connect, CONNECT, CONNACK, DISCONNECT, close', messages: 'QoS 0, 64 B, 16 frames per write' },
    results,
  }, null, 2))
} finally {
  mosquitto.child.kill('SIGKILL')
  redis.child.kill('SIGKILL')
}
