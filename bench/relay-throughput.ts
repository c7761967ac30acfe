/**
 * Relay throughput: N publishers send QoS 0 PUBLISH packets as fast as TCP lets them, one
 * subscriber counts deliveries, first straight to Mosquitto, then through Moat (a separate
 * `node dist/cli.js` process). Reports delivered messages per second and Moat's CPU time per
 * delivered message (each message crosses Moat twice: publisher→broker and broker→subscriber).
 *
 *   npm run bench:relay -- [--seconds 5] [--publishers 10] [--size 64] [--batch 16] [--limits 'messageRate: 1000000/s']
 *
 * `--acl-rules N` gives Moat an ACL of N rules (placeholder rules for devices, static trees of other
 * sites with selectors, the benchmark's own tree, a final deny): every packet is judged by it.
 * `--limits` adds keys (YAML flow syntax) to Moat's `limits:` section, e.g. generous rates and
 * payload caps that never bite, to measure what the size and rate checks cost per message.
 *
 * `--workers N` runs Moat with `workers: N` (node:cluster); its CPU time is then the primary's plus
 * every worker's.
 *
 * A first measurement; the full benchmark (HAProxy, latency, connections) is bench issue work.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generate, parser as createParser } from 'mqtt-packet'
import { cpuSeconds, freePort, sleep, start } from './processes.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, publishers: { type: 'string', default: '10' }, size: { type: 'string', default: '64' }, batch: { type: 'string', default: '16' }, limits: { type: 'string', default: '' }, 'acl-rules': { type: 'string', default: '0' }, workers: { type: 'string', default: '1' } } })
const WORKERS = Number(values.workers)
const SECONDS = Number(values.seconds)
const PUBLISHERS = Number(values.publishers)
const SIZE = Number(values.size)
/** Frames per publisher write: 1 is a device sending one message per write. */
const BATCH = Number(values.batch)

const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'))


async function scenario(port: number, pids: number[] | null): Promise<{ rate: number; cpuUsPerMessage: number | null }> {
  const connect = (id: string): Buffer => generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 60 })
  let received = 0
  const sub = net.connect(port, '127.0.0.1')
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p) => { if (p.cmd === 'publish') received++ })
  sub.on('data', (d: Buffer) => parser.parse(d))
  sub.write(connect(`bench-sub-${port}`))
  sub.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] }))
  await sleep(300)
  const frame = generate({ cmd: 'publish', topic: 'bench/load', payload: Buffer.alloc(SIZE, 7), qos: 0, retain: false, dup: false })
  const batch = Buffer.concat(Array.from({ length: BATCH }, () => frame))
  let stop = false
  const publishers = Array.from({ length: PUBLISHERS }, (_, i) => {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.write(connect(`bench-pub-${port}-${i}`))
    const pump = (): void => {
      while (!stop) if (!s.write(batch)) return void s.once('drain', pump)
    }
    s.on('connect', () => setTimeout(pump, 200))
    return s
  })
  await sleep(1000) // warm up
  const cpuOf = (list: number[]): number => list.reduce((sum, p) => sum + cpuSeconds(p), 0)
  const cpu0 = pids === null ? 0 : cpuOf(pids)
  const start = received
  const t0 = process.hrtime.bigint()
  await sleep(SECONDS * 1000)
  const count = received - start
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = pids === null ? 0 : cpuOf(pids) - cpu0
  stop = true
  for (const p of publishers) p.destroy()
  sub.destroy()
  await sleep(500)
  return { rate: count / elapsed, cpuUsPerMessage: pids === null ? null : (cpu / count) * 1e6 }
}

const brokerPort = await freePort()
writeFileSync(join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type information\n`)
const mosquitto = await start('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], /running/)
/** An ACL of `n` rules in which the benchmark's topics are allowed near the end, as in a real policy. */
function aclSection(n: number): string {
  if (n <= 0) return ''
  const rules = ['  - { deny: all, topic: "devices/{client_id}/firmware/#" }', '  - { allow: all, topic: "devices/{client_id}/#" }']
  for (let i = rules.length; i < n - 2; i++) rules.push(`  - { ${i % 3 === 0 ? 'deny' : 'allow'}: all, topic: "site${i}/line${i % 7}/+/status"${i % 5 === 0 ? ', users: [ops]' : ''} }`)
  rules.push('  - { allow: all, topic: "bench/#" }', '  - { deny: all, topic: "#" }')
  return `acl:\n${rules.join('\n')}\n`
}
writeFileSync(join(dir, 'moat.yaml'), `listeners: [{ name: bench, protocol: mqtt, host: 127.0.0.1, port: 0 }]\nupstream: { host: 127.0.0.1, port: ${brokerPort} }\nlimits: { maxPacketSize: 1MiB${values.limits === '' ? '' : `, ${values.limits}`} }\nlog: { level: info }\nauth: { anonymous: true }\nworkers: ${WORKERS}\n${aclSection(Number(values['acl-rules']))}`)
// With workers, ready once the primary says every worker serves (its line lists their pids).
const moat = await start(process.execPath, ['dist/cli.js', '--config', join(dir, 'moat.yaml')],
  WORKERS > 1 ? /"event":"listening".*?"port":(\d+)[\s\S]*"event":"ready","workers":\d+,"pids":\[([\d,]+)\]/ : /"event":"listening".*?"port":(\d+)/)
const moatPort = Number(moat.match[1])
const moatPids = [moat.child.pid!, ...(WORKERS > 1 ? moat.match[2]!.split(',').map(Number) : [])]

try {
  const direct = await scenario(brokerPort, null)
  const proxied = await scenario(moatPort, moatPids)
  const result = {
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    node: process.version,
    scenario: { publishers: PUBLISHERS, payloadBytes: SIZE, framesPerWrite: BATCH, qos: 0, seconds: SECONDS, workers: WORKERS },
    direct: { deliveredPerSecond: Math.round(direct.rate) },
    moat: { deliveredPerSecond: Math.round(proxied.rate), cpuMicrosecondsPerDeliveredMessage: Number(proxied.cpuUsPerMessage!.toFixed(2)) },
    ratio: Number((proxied.rate / direct.rate).toFixed(3)),
  }
  console.log(JSON.stringify(result, null, 2))
} finally {
  moat.child.kill('SIGTERM') // with workers, the primary has them drain and exit
  mosquitto.child.kill('SIGKILL')
}
