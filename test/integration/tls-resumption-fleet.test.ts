/**
 * Session resumption across a fleet: two Moat processes (node dist/cli.js run) sharing a real
 * redis-server (`cluster.redis`). A ticket one instance issued resumes on the other, seen by Node's
 * tls, `openssl s_client` and Python's ssl; a rotation made by one instance is adopted by both;
 * a reload with a new CRL on both ends every older ticket there and the revoked client is refused;
 * neither the seeds in Redis nor the keys derived from them appear in a log line.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadServerTls } from '../../src/config/tls-settings.js'
import { ticketKey } from '../../src/listeners/ticket-keys.js'
import { resumptionOptions } from '../../src/listeners/resumption.js'
import { DEFAULT_TLS_RESUMPTION } from '../../src/config/tls-resumption.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { uid } from '../helpers/clients.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { dial, handshakesIn, pythonDials, sClient, type Dial } from '../helpers/resumption.js'

let broker: TestBroker
let redis: RedisServer
let reader: Redis
let certs: TestCerts
let ca: Buffer
let dir: string
let prefix: string
let a: MoatProcess
let b: MoatProcess

/** The port a process bound for `listener` (from its `listening` line). */
function port(moat: MoatProcess, listener: string): number {
  return Number(moat.logs.find((l) => l.event === 'listening' && l.listener === listener)!.port)
}

function config(): Record<string, unknown> {
  const tls = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca, clientCert: 'optional', crl: join(dir, 'ca.crl') }
  return {
    listeners: [
      { name: 'secure', protocol: 'mqtts', host: '127.0.0.1', port: 0, tls },
      // Rotated every 4 s (and a ticket lives as long: the rotation always comes first).
      { name: 'fast', protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { ...tls, resumption: { lifetime: '4s', rotate: '4s' } } },
    ],
    upstream: { host: broker.host, port: broker.port },
    admin: { host: '127.0.0.1', port: 0 },
    auth: { anonymous: true },
    cluster: { redis: { url: redis.url, prefix } },
  }
}

const client = (name: string): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(certs.clients[name]!.cert), key: readFileSync(certs.clients[name]!.key) })

async function metrics(moat: MoatProcess): Promise<string> {
  return (await fetch(`http://127.0.0.1:${moat.adminPort}/metrics`)).text()
}

/** Redis' clock and the `at` of a listener's seed: how long the seed in use has left. */
async function remainingMs(listener: string, rotateMs: number): Promise<number> {
  const [[, time], [, at]] = (await reader.multi().time().hget(`{${prefix}}:tls:${listener}`, 'at').exec())! as [[null, [string, string]], [null, string]]
  return rotateMs - (Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000) - Number(at))
}

beforeAll(async () => {
  broker = await startBroker('aedes')
  redis = await startRedis()
  reader = new Redis(redis.url, { maxRetriesPerRequest: 0 })
  certs = makeTestCerts(['device-1', 'device-2', 'device-3'])
  ca = readFileSync(certs.ca)
  dir = mkdtempSync(join(tmpdir(), 'moat-resumption-fleet-'))
  copyFileSync(certs.crl, join(dir, 'ca.crl'))
  prefix = uid('fleet')
  ;[a, b] = await Promise.all([MoatProcess.start(dir, 'a.yaml', config()), MoatProcess.start(dir, 'b.yaml', config())])
  // Each instance has taken the fleet's seed of both listeners.
  for (const moat of [a, b]) {
    for (const listener of ['secure', 'fast']) await moat.waitForLog((l) => l.event === 'tls_ticket_seed' && l.listener === listener && l.outcome === 'shared')
  }
}, 120_000)

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  reader?.disconnect()
  await redis?.stop()
  await broker?.stop()
  certs?.cleanup()
})

describe('two Moat instances sharing Redis', { timeout: 120_000 }, () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`Node over ${version}: a ticket from one instance resumes on the other, every time, both ways`, async () => {
      const pinned = { minVersion: version, maxVersion: version }
      const before = [handshakesIn(await metrics(a), 'secure', 'resumed'), handshakesIn(await metrics(b), 'secure', 'resumed')]
      const first = await dial(port(a, 'secure'), ca, pinned)
      expect(first).toMatchObject({ reused: false, error: null })
      let session = first.session!
      for (let i = 0; i < 10; i++) {
        const next = await dial(port(i % 2 === 0 ? b : a, 'secure'), ca, { ...pinned, session })
        expect(next.reused, `dial ${i + 1}`).toBe(true)
        session = next.session!
      }
      expect(handshakesIn(await metrics(a), 'secure', 'resumed')).toBe(before[0]! + 5)
      expect(handshakesIn(await metrics(b), 'secure', 'resumed')).toBe(before[1]! + 5)
    })

    it(`openssl s_client and Python ssl over ${version}: New on one instance, Reused on the other`, async () => {
      const flag = version === 'TLSv1.2' ? '-tls1_2' : '-tls1_3'
      const file = join(dir, `s_client-${version}.pem`)
      expect((await sClient(port(a, 'secure'), certs.ca, file, 'out', [flag])).reused).toBe(false)
      const resumed = await sClient(port(b, 'secure'), certs.ca, file, 'in', [flag])
      expect(resumed.reused, resumed.output).toBe(true)
      const python = await pythonDials([port(a, 'secure'), port(b, 'secure')], certs.ca, version === 'TLSv1.2' ? 'TLSv1_2' : 'TLSv1_3', 6, dir)
      expect(python).toEqual([false, true, true, true, true, true])
    })
  }

  it('a rotation made by one instance is adopted by both: older tickets stop resuming everywhere before their lifetime, new ones resume everywhere', async () => {
    const ROTATE = 4000
    // Start a ticket well inside a seed's life, so the check after the rotation is within its lifetime.
    await expect.poll(async () => { const left = await remainingMs('fast', ROTATE); return left > 1000 && left < 2800 }, { timeout: 10_000, interval: 50 }).toBe(true)
    const pinned = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const
    const issuedAt = Date.now()
    const old = await dial(port(a, 'fast'), ca, pinned)
    expect((await dial(port(b, 'fast'), ca, { ...pinned, session: old.session! })).reused).toBe(true)
    const at = await reader.hget(`{${prefix}}:tls:fast`, 'at')
    await expect.poll(() => reader.hget(`{${prefix}}:tls:fast`, 'at'), { timeout: 10_000, interval: 50 }).not.toBe(at)
    await new Promise((resolve) => setTimeout(resolve, 600)) // both have asked Redis since (every 400 ms)
    const tried: Dial[] = [await dial(port(a, 'fast'), ca, { ...pinned, session: old.session! }), await dial(port(b, 'fast'), ca, { ...pinned, session: old.session! })]
    expect(Date.now() - issuedAt).toBeLessThan(4000) // the ticket is still within its lifetime: the rotation ended it
    expect(tried.map((d) => d.reused)).toEqual([false, false])
    expect((await dial(port(a, 'fast'), ca, { ...pinned, session: tried[1]!.session! })).reused).toBe(true)
  })

  it('a reload with a new CRL on both: the revoked client\'s ticket resumes nowhere and it is refused; another client\'s new ticket is shared again', async () => {
    const tickets: Record<string, Buffer> = {}
    for (const device of ['device-2', 'device-3']) {
      const first = await dial(port(a, 'secure'), ca, client(device))
      expect((await dial(port(b, 'secure'), ca, { ...client(device), session: first.session! })).reused).toBe(true)
      tickets[device] = first.session!
    }
    copyFileSync(certs.revoke('device-2'), join(dir, 'ca.crl'))
    for (const moat of [a, b]) {
      const reloaded = (): number => moat.logs.filter((l) => l.event === 'tls_reload' && l.outcome === 'success' && l.listener === 'secure').length
      const before = reloaded()
      moat.signal('SIGHUP')
      await expect.poll(reloaded, { timeout: 10_000 }).toBe(before + 1)
    }
    for (const moat of [a, b]) {
      const refused = await dial(port(moat, 'secure'), ca, { ...client('device-2'), session: tickets['device-2']! }, 500)
      expect(refused.reused).toBe(false)
      expect(refused.closedByServer || refused.error !== null).toBe(true)
      await expect.poll(async () => /moat_connections_refused_total\{listener="secure",reason="client_cert_refused"\} 1/.test(await metrics(moat))).toBe(true)
    }
    const full = await dial(port(a, 'secure'), ca, { ...client('device-3'), session: tickets['device-3']! })
    expect(full).toMatchObject({ reused: false, error: null })
    expect((await dial(port(b, 'secure'), ca, { ...client('device-3'), session: full.session! })).reused).toBe(true)
  })

  it('keeps one seed per listener in Redis under the hash tag, and no seed or ticket key in any log line', async () => {
    expect((await reader.keys(`{${prefix}}:tls:*`)).sort()).toEqual([`{${prefix}}:tls:fast`, `{${prefix}}:tls:secure`])
    const logs = JSON.stringify([...a.logs, ...b.logs])
    const listener = 'secure' // the `fast` seed would change under the test
    const seed = Buffer.from((await reader.hget(`{${prefix}}:tls:${listener}`, 'seed'))!, 'base64')
    expect(seed).toHaveLength(32)
    // The key Moat derives: from the seed and the fingerprint of the files the instances run.
    const files = { cert: certs.server.cert, key: certs.server.key, passphrase: null, ca: certs.ca, clientCert: 'optional', crl: [join(dir, 'ca.crl')], minVersion: 'TLSv1.2', ciphers: null, ecdhCurve: null, sni: [] } as const
    const fingerprint = loadServerTls({ ...files, crl: [...files.crl], sni: [] }).fingerprint
    const key = ticketKey(seed, listener, fingerprint)
    for (const secret of [seed, key]) {
      for (const encoding of ['base64', 'hex', 'base64url'] as const) expect(logs.includes(secret.toString(encoding))).toBe(false)
    }
    // It is the key in use: a server of our own holding it resumes a ticket instance A issued
    // (which is what read access to Redis gives: docs/hardening.md).
    const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key), ...resumptionOptions(listener, DEFAULT_TLS_RESUMPTION, fingerprint) }, (socket) => socket.resume())
    server.setTicketKeys(key)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const issued = await dial(port(a, listener), ca)
    expect((await dial((server.address() as { port: number }).port, ca, { session: issued.session! })).reused).toBe(true)
    server.close()
  })
})
