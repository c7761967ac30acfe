/**
 * CONNECTs per second through Moat with credential checks. C clients each loop: open TCP, send
 * CONNECT (user name + password), wait for the CONNACK, send DISCONNECT, close. Moat runs as a
 * separate `node dist/cli.js` process in front of Mosquitto; each scenario restarts it with its
 * own config. All clients use one account, so a cache (where on) answers all but the first.
 *
 * Scenarios: no auth (anonymous, the baseline); a mosquitto_passwd file ($7$, PBKDF2 101
 * iterations) without and with the cache; a `moat passwd` scrypt file (N=16384) without and with
 * the cache; the HTTP backend (a local service in this process) without and with the cache.
 *
 *   npm run bench:auth -- [--seconds 5] [--clients 32]
 */
import { execFileSync, spawn } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generate } from 'mqtt-packet'
import { connectLoops, freePort, listening, sleep, start, type ConnectLoopResult } from './processes.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, clients: { type: 'string', default: '32' } } })
const SECONDS = Number(values.seconds)
const CLIENTS = Number(values.clients)
const dir = mkdtempSync(join(tmpdir(), 'moat-bench-auth-'))




function measure(port: number, pid: number, credentials: boolean): Promise<ConnectLoopResult> {
  const frame = generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 60,
    ...(credentials ? { username: 'bench', password: Buffer.from('bench-secret') } : {}),
  })
  return connectLoops(port, pid, frame, CLIENTS, SECONDS)
}

const brokerPort = await freePort()
writeFileSync(join(dir, 'mosquitto.conf'), `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type information\nconnection_messages false\nmax_connections -1\n`)
const mosquitto = await start('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], /running|Opening ipv4/)
await sleep(200)

execFileSync('mosquitto_passwd', ['-c', '-b', join(dir, 'passwd-7'), 'bench', 'bench-secret'])
const scrypt = spawn(process.execPath, ['dist/cli.js', 'passwd', join(dir, 'passwd-scrypt'), 'bench'], { stdio: ['pipe', 'ignore', 'ignore'] })
scrypt.stdin.end('bench-secret\n')
await new Promise((r) => scrypt.on('close', r))

const service = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"result":"allow"}')
  })
})
service.listen(0, '127.0.0.1')
await new Promise((r) => service.once('listening', r))
const serviceUrl = `http://127.0.0.1:${(service.address() as net.AddressInfo).port}/auth`

const cache = '{ ttl: 1m, negativeTtl: 5s }'
const scenarios: Array<[string, string]> = [
  ['anonymous (no backend, no credentials: the baseline)', 'auth: { anonymous: true }'],
  ['file $7$ (mosquitto_passwd), no cache', `auth: { lockout: false, backends: [{ type: file, path: passwd-7 }] }`],
  ['file $7$ (mosquitto_passwd), cache', `auth: { lockout: false, backends: [{ type: file, path: passwd-7, cache: ${cache} }] }`],
  ['file scrypt (moat passwd), no cache', `auth: { lockout: false, backends: [{ type: file, path: passwd-scrypt }] }`],
  ['file scrypt (moat passwd), cache', `auth: { lockout: false, backends: [{ type: file, path: passwd-scrypt, cache: ${cache} }] }`],
  ['http, no cache', `auth: { lockout: false, backends: [{ type: http, url: "${serviceUrl}", cache: false }] }`],
  ['http, cache', `auth: { lockout: false, backends: [{ type: http, url: "${serviceUrl}", cache: ${cache} }] }`],
]

const results: Record<string, unknown> = {}
try {
  for (const [name, auth] of scenarios) {
    const file = join(dir, 'moat.yaml')
    const port = await freePort()
    // Log level warn: per-session info lines would cost Moat more than the auth being measured.
    writeFileSync(file, `listeners: [{ name: bench, protocol: mqtt, host: 127.0.0.1, port: ${port} }]\nupstream: { host: 127.0.0.1, port: ${brokerPort} }\nlog: { level: warn }\n${auth}\n`)
    const moat = { child: spawn(process.execPath, ['dist/cli.js', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'] }) }
    try {
      await listening(port)
      results[name] = await measure(port, moat.child.pid!, !auth.includes('anonymous'))
    } finally {
      moat.child.kill('SIGKILL')
      await sleep(300)
    }
  }
  console.log(JSON.stringify({
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    node: process.version,
    scenario: { clients: CLIENTS, seconds: SECONDS, loop: 'TCP connect, CONNECT, CONNACK, DISCONNECT, close' },
    results,
  }, null, 2))
} finally {
  mosquitto.child.kill('SIGKILL')
  service.close()
}
