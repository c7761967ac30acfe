/**
 * Fleet-wide per-user rates (`limits.perUsername` with `cluster.redis`, leased budgets): how close
 * to the configured rate a user spread over N instances gets, and what the leases cost Redis.
 *
 * 1. Accuracy (delivered per second, and per connection): N Moat processes (node dist/cli.js; N = 2 and 3) on one local redis-server, in
 *    front of Mosquitto, `perUsername: { messageRate: R }` with throttle (the default). One user
 *    publishes QoS 0 as fast as TCP lets it through each instance; a subscriber on the broker
 *    itself counts deliveries. Reported: messages/s delivered against R, and the same without
 *    `cluster.redis` (per instance: about N × R). Then one Moat with `workers: 2`, four connections
 *    of the user (node:cluster hands them to the workers in turn), leasing from the primary (no
 *    `cluster.redis`) and from Redis; for the first, the primary's CPU as a share of one core.
 * 2. Redis cost: the lease loop (fleet/redis-budget-leases.ts) driven in this process against a
 *    real redis-server, with U users (default 10,000) active on one instance, in three profiles:
 *    each user at a tenth of its rate, the same with the default 100 ms burst, and every user
 *    flat out over its rate. Reported from INFO: commands/s (commandstats, calls made inside the
 *    Lua script included), keys touched/s (the script's HMGET per bucket), and Redis CPU
 *    (used_cpu_user + used_cpu_sys) as a share of one core.
 *
 *   npm run bench:user-rates -- [--seconds 10] [--rate 100] [--users 10000]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { generate, parser as createParser } from 'mqtt-packet'
import { pino } from 'pino'
import { RedisBudgetLeases } from '../src/fleet/redis-budget-leases.js'
import { BucketSpec, ExcessAction, nowMs, TokenBucket } from '../src/limits/token-bucket.js'
import { cpuSeconds, freePort, listening, sleep, start } from './processes.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '100' }, users: { type: 'string', default: '10000' } } })
const SECONDS = Number(values.seconds)
const RATE = Number(values.rate)
const USERS = Number(values.users)
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-user-rates-'))

function connectFrame(clientId: string, username?: string): Buffer {
  return generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60, ...(username === undefined ? {} : { username, password: Buffer.from('bench-secret') }) })
}

/** One user publishing flat out through each port; deliveries counted at the broker over SECONDS. */
async function accuracy(brokerPort: number, ports: number[]): Promise<{ deliveredPerSecond: number; perConnection: number[] }> {
  const topicOf = (i: number): string => `bench/user/${i}`
  const counts = ports.map(() => 0)
  const sub = net.connect(brokerPort, '127.0.0.1')
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p) => {
    if (p.cmd !== 'publish') return
    const i = Number(p.topic.slice(topicOf(0).length - 1))
    counts[i]! += 1
  })
  sub.on('data', (d: Buffer) => parser.parse(d))
  sub.write(connectFrame(`bench-sub-${brokerPort}`))
  sub.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/user/#', qos: 0 }] }))
  await sleep(300)
  let stop = false
  const publishers = ports.map((port, i) => {
    const frame = generate({ cmd: 'publish', topic: topicOf(i), payload: Buffer.alloc(32, 7), qos: 0, retain: false, dup: false })
    const batch = Buffer.concat(Array.from({ length: 16 }, () => frame))
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.write(connectFrame(`bench-pub-${i}`, 'alice'))
    const pump = (): void => {
      while (!stop) if (!s.write(batch)) return void s.once('drain', pump)
    }
    s.on('connect', () => setTimeout(pump, 200))
    return s
  })
  await sleep(2000) // the bursts and first leases spent
  const c0 = counts.slice()
  const t0 = process.hrtime.bigint()
  await sleep(SECONDS * 1000)
  const delta = counts.map((c, i) => c - c0[i]!)
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  stop = true
  for (const p of publishers) p.destroy()
  sub.destroy()
  await sleep(300)
  const total = delta.reduce((a, b) => a + b, 0)
  return { deliveredPerSecond: Number((total / elapsed).toFixed(1)), perConnection: delta.map((d) => Number((d / elapsed).toFixed(1))) }
}

/** N Moat processes (each with `workers` workers), each on its own port. */
async function instances(n: number, brokerPort: number, cluster: string, workers = 1): Promise<{ ports: number[]; pids: number[]; stop: () => Promise<void> }> {
  const ports: number[] = []
  const children: ChildProcess[] = []
  for (let i = 0; i < n; i++) {
    const port = await freePort()
    const file = join(dir, `moat-${i}.yaml`)
    writeFileSync(file, [
      `workers: ${workers}`,
      `listeners: [{ name: bench, protocol: mqtt, host: 127.0.0.1, port: ${port} }]`,
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'log: { level: warn }',
      'auth: { lockout: false, backends: [{ type: file, path: passwd, cache: { ttl: 1m } }] }',
      `limits: { perUsername: { messageRate: ${RATE}/s, onExcess: throttle } }`,
      cluster,
    ].join('\n') + '\n')
    children.push(spawn(process.execPath, ['dist/cli.js', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] }))
    ports.push(port)
  }
  for (const port of ports) await listening(port)
  await sleep(500)
  return {
    ports,
    pids: children.map((c) => c.pid!),
    stop: async () => {
      // SIGTERM: a primary has its workers drain (no session left by now) and ends after them.
      await Promise.all(children.map((c) => new Promise((resolve) => { c.once('exit', resolve); c.kill('SIGTERM') })))
    },
  }
}

type Info = Record<string, number>
async function info(redis: Redis): Promise<Info> {
  const out: Info = {}
  for (const section of ['commandstats', 'cpu']) {
    for (const line of (await redis.info(section)).split('\r\n')) {
      const m = /^cmdstat_(\w+):calls=(\d+)/.exec(line)
      if (m !== null) out[m[1]!] = Number(m[2])
      const c = /^(used_cpu_sys|used_cpu_user):([\d.]+)/.exec(line)
      if (c !== null) out[c[1]!] = Number(c[2])
    }
  }
  return out
}

/**
 * U users on one instance, each one message bucket of `perSecond` with `burstMs`, spending `share`
 * of it (Infinity: flat out), renewed by the real loop against `redis` for SECONDS.
 */
async function cost(redisPort: number, name: string, perSecond: number, burstMs: number, share: number): Promise<Record<string, unknown>> {
  const client = new Redis({ port: redisPort, host: '127.0.0.1', lazyConnect: false })
  const admin = new Redis({ port: redisPort, host: '127.0.0.1' })
  await admin.flushall()
  const leases = new RedisBudgetLeases({ redis: client, up: true }, `bench-${name.replace(/\W/g, '')}`, pino({ level: 'warn' }))
  const table = leases.open()
  await leases.renew() // leasing from now on
  const now = nowMs()
  const spec = new BucketSpec({ count: perSecond, perMs: 1000 }, burstMs)
  const buckets = Array.from({ length: USERS }, (_, i) => {
    const b = new TokenBucket(spec, ExcessAction.Throttle, false, now)
    table.track(`user-${i}`, [b], ['m'], now)
    return b
  })
  // Spending: every 10 ms; at `share` of the rate each user spends one message every 1/(share × rate) s, phases spread.
  const everyTicks = Number.isFinite(share) ? Math.max(1, Math.round(100 / (perSecond * share))) : 1
  let tick = 0
  let spent = 0
  const spender = setInterval(() => {
    const t = nowMs()
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!
      if (Number.isFinite(share)) {
        if ((i + tick) % everyTicks === 0 && b.waitFor(1, t) === 0) { b.take(1); spent++ }
      } else {
        while (b.waitFor(1, t) === 0) { b.take(1); spent++ }
      }
    }
    tick++
  }, 10)
  leases.start()
  await sleep(3000) // warm: advances charged, targets settled
  const i0 = await info(admin)
  const s0 = spent
  const t0 = process.hrtime.bigint()
  await sleep(SECONDS * 1000)
  const i1 = await info(admin)
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  const spentPerSecond = (spent - s0) / elapsed
  clearInterval(spender)
  await leases.close()
  client.disconnect()
  admin.disconnect()
  const per = (k: string): number => Math.round(((i1[k] ?? 0) - (i0[k] ?? 0)) / elapsed)
  const commands = Object.keys(i1).filter((k) => !k.startsWith('used_cpu') && k !== 'info')
  const byCommand = Object.fromEntries(commands.map((k) => [k, per(k)]).filter(([, v]) => (v as number) > 0))
  const cpu = ((i1.used_cpu_user! + i1.used_cpu_sys!) - (i0.used_cpu_user! + i0.used_cpu_sys!)) / elapsed
  return {
    profile: name,
    users: USERS,
    messagesPerSecondSpent: Math.round(spentPerSecond),
    luaCallsPerSecond: per('evalsha') + per('eval'),
    keysTouchedPerSecond: per('hmget'),
    commandsPerSecond: byCommand,
    redisCpuShareOfOneCore: Number(cpu.toFixed(3)),
  }
}

const brokerPort = await freePort()
writeFileSync(join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type information\nconnection_messages false\nmax_connections -1\n`)
const mosquitto = await start('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], /running|Opening ipv4/)
const redisPort = await freePort()
execFileSync('mosquitto_passwd', ['-c', '-b', join(dir, 'passwd'), 'alice', 'bench-secret'])
const redis = await start('/usr/bin/redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/)

const results: Record<string, unknown> = {}
try {
  for (const n of [2, 3]) {
    for (const [label, cluster] of [['per instance (no cluster.redis)', ''], ['fleet-wide (cluster.redis)', `cluster: { redis: { url: "redis://127.0.0.1:${redisPort}", prefix: bench${n} } }`]] as const) {
      const fleet = await instances(n, brokerPort, cluster)
      try {
        results[`${n} instances, ${label}`] = { configuredRate: RATE, ...(await accuracy(brokerPort, fleet.ports)) }
      } finally {
        await fleet.stop()
      }
    }
  }
  for (const [label, cluster] of [['leased from the primary (no cluster.redis)', ''], ['cluster.redis', `cluster: { redis: { url: "redis://127.0.0.1:${redisPort}", prefix: benchw } }`]] as const) {
    const fleet = await instances(1, brokerPort, cluster, 2)
    try {
      const cpu0 = cpuSeconds(fleet.pids[0]!)
      const t0 = process.hrtime.bigint()
      const port = fleet.ports[0]!
      const run = await accuracy(brokerPort, [port, port, port, port])
      const primaryCpu = (cpuSeconds(fleet.pids[0]!) - cpu0) / (Number(process.hrtime.bigint() - t0) / 1e9)
      results[`1 instance of workers: 2 (4 connections), ${label}`] = { configuredRate: RATE, ...run, ...(cluster === '' ? { primaryCpuShareOfOneCore: Number(primaryCpu.toFixed(3)) } : {}) }
    } finally {
      await fleet.stop()
    }
  }
  const costs = [
    await cost(redisPort, 'each user at 1/10 of 10/s (burst 1s)', 10, 1000, 0.1),
    await cost(redisPort, 'each user at 1/10 of 10/s (burst 100ms, the default)', 10, 100, 0.1),
    await cost(redisPort, 'every user flat out over 10/s (burst 100ms)', 10, 100, Infinity),
  ]
  console.log(JSON.stringify({
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    node: process.version,
    scenario: { seconds: SECONDS, rate: `${RATE}/s per user`, users: USERS, accuracy: 'one user, QoS 0 flat out through each instance, throttle; deliveries counted at the broker after 2 s' },
    accuracy: results,
    redisCost: costs,
  }, null, 2))
} finally {
  mosquitto.child.kill('SIGKILL')
  redis.child.kill('SIGKILL')
}
