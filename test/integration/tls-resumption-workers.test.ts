/**
 * Session resumption with `workers: 2` (node dist/cli.js): the primary holds the ticket seeds and
 * hands them to its workers, so a session resumes whichever worker node:cluster hands the
 * connection to: many reconnects, all resumed, on both workers; after a worker restarts; after a
 * rotation, which both workers take together; not after a reload with a new CRL, for the revoked
 * client. With `cluster.redis` the primary takes the fleet's seed for its workers: a ticket from
 * another instance resumes on both.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { uid } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { dial, handshakesIn } from '../helpers/resumption.js'

/** Starting a primary and two workers on a busy machine takes a while. */
const SLOW = 120_000

let broker: TestBroker
let certs: TestCerts
let ca: Buffer
beforeAll(async () => {
  broker = await startBroker('aedes')
  certs = makeTestCerts(['device-1', 'device-2', 'device-3'])
  ca = readFileSync(certs.ca)
})
afterAll(async () => {
  await broker?.stop()
  certs?.cleanup()
})

function writeConfig(dir: string, extra: string[] = []): string {
  const tls = `cert: ${certs.server.cert}, key: ${certs.server.key}, ca: ${certs.ca}, clientCert: optional, crl: ${join(dir, 'ca.crl')}`
  const file = join(dir, 'moat.yaml')
  writeFileSync(file, [
    'workers: 2',
    'listeners:',
    `  - { name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { ${tls} } }`,
    // A ticket lives as long as its key: the rotation always ends it first.
    `  - { name: fast, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { ${tls}, resumption: { lifetime: 4s, rotate: 4s } } }`,
    `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
    'admin: { host: 127.0.0.1, port: 0 }',
    'auth: { anonymous: true }',
    'log: { level: debug }',
    ...extra,
  ].join('\n') + '\n')
  return file
}

/** `n` dials offering `session` (each the session of the last); how many resumed. */
async function resumes(port: number, session: Buffer, n: number, options: Parameters<typeof dial>[2] = {}): Promise<number> {
  let resumed = 0
  for (let i = 0; i < n; i++) {
    const next = await dial(port, ca, { ...options, session })
    if (next.reused) resumed += 1
    session = next.session ?? session
  }
  return resumed
}

async function accepted(moat: MoatCluster): Promise<number[]> {
  return [await moat.value('moat_worker_connections_accepted_total{worker="1"}'), await moat.value('moat_worker_connections_accepted_total{worker="2"}')]
}

describe('workers: 2', { timeout: SLOW }, () => {
  let moat: MoatCluster
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-resumption-workers-'))
    copyFileSync(certs.crl, join(dir, 'ca.crl'))
    moat = await MoatCluster.start(writeConfig(dir))
  }, SLOW)
  afterAll(async () => {
    await moat?.kill()
  })

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`40 reconnects over ${version} with the first session: all resumed, on both workers`, async () => {
      const pinned = { minVersion: version, maxVersion: version }
      const port = moat.port('secure')
      const before = await accepted(moat)
      const resumedBefore = handshakesIn(await moat.metrics(), 'secure', 'resumed')
      const first = await dial(port, ca, pinned)
      expect(first).toMatchObject({ reused: false, error: null })
      expect(await resumes(port, first.session!, 40, pinned)).toBe(40)
      const after = await accepted(moat)
      expect(after[0]! - before[0]!).toBeGreaterThan(5)
      expect(after[1]! - before[1]!).toBeGreaterThan(5)
      expect(handshakesIn(await moat.metrics(), 'secure', 'resumed')).toBe(resumedBefore + 40)
    })
  }

  it('a worker that restarts resumes the tickets issued before it started', async () => {
    const port = moat.port('secure')
    const first = await dial(port, ca)
    const pid = moat.workerPid(1)
    process.kill(pid, 'SIGKILL')
    await expect.poll(() => moat.all({ event: 'worker_ready', worker: 1 }).some((l) => l.pid !== pid), { timeout: SLOW }).toBe(true)
    const before = await accepted(moat)
    expect(await resumes(port, first.session!, 20)).toBe(20)
    const after = await accepted(moat)
    expect(after[0]! - before[0]!).toBeGreaterThan(2) // the new worker 1 took its share
  })

  it('a rotation reaches both workers together: the older ticket resumes on neither, the new one on both', async () => {
    const port = moat.port('fast')
    const rotations = (worker: number): number => moat.lines.filter((l) => l.event === 'tls_ticket_key' && l.listener === 'fast' && l.worker === worker).length
    const seen = [rotations(1), rotations(2)]
    await expect.poll(() => rotations(1) > seen[0]! && rotations(2) > seen[1]!, { timeout: 10_000, interval: 20 }).toBe(true)
    // 1.5 s into the seed's 4 s: a ticket whose key rotates well before its lifetime ends.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const issuedAt = Date.now()
    const old = await dial(port, ca)
    expect(await resumes(port, old.session!, 10)).toBe(10)
    const next = [rotations(1), rotations(2)]
    await expect.poll(() => rotations(1) > next[0]! && rotations(2) > next[1]!, { timeout: 10_000, interval: 20 }).toBe(true)
    let resumedOld = 0
    for (let i = 0; i < 10; i++) if ((await dial(port, ca, { session: old.session! })).reused) resumedOld += 1
    expect(Date.now() - issuedAt).toBeLessThan(4000) // within the ticket's lifetime: the rotation ended it
    expect(resumedOld).toBe(0)
    const fresh = await dial(port, ca)
    expect(await resumes(port, fresh.session!, 10)).toBe(10)
  })

  it('after a reload (SIGHUP) with a new CRL, the revoked client\'s ticket resumes on no worker and each refuses it', async () => {
    const port = moat.port('secure')
    const as = (name: string): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(certs.clients[name]!.cert), key: readFileSync(certs.clients[name]!.key) })
    const revokedTicket = (await dial(port, ca, as('device-2'))).session!
    const keptTicket = (await dial(port, ca, as('device-3'))).session!
    expect(await resumes(port, revokedTicket, 4, as('device-2'))).toBe(4)
    copyFileSync(certs.revoke('device-2'), join(dir, 'ca.crl'))
    const reloaded = (): number[] => [1, 2].map((w) => moat.all({ event: 'tls_reload', outcome: 'success', listener: 'secure', worker: w }).length)
    const before = reloaded()
    moat.child.kill('SIGHUP')
    await expect.poll(() => reloaded().every((n, i) => n > before[i]!), { timeout: SLOW }).toBe(true)
    const refusedBefore = await moat.value('moat_connections_refused_total{listener="secure",reason="client_cert_refused"}')
    for (let i = 0; i < 6; i++) {
      const attempt = await dial(port, ca, { ...as('device-2'), session: revokedTicket }, 300)
      expect(attempt.reused).toBe(false)
      expect(attempt.closedByServer || attempt.error !== null).toBe(true)
    }
    await expect.poll(() => moat.value('moat_connections_refused_total{listener="secure",reason="client_cert_refused"}')).toBe(refusedBefore + 6)
    const full = await dial(port, ca, { ...as('device-3'), session: keptTicket })
    expect(full).toMatchObject({ reused: false, error: null })
    expect(await resumes(port, full.session!, 10, as('device-3'))).toBe(10)
  })
})

describe('workers: 2 with cluster.redis', { timeout: SLOW }, () => {
  let redis: RedisServer
  let workers: MoatCluster
  let single: MoatProcess
  beforeAll(async () => {
    redis = await startRedis()
    const dir = mkdtempSync(join(tmpdir(), 'moat-resumption-workers-redis-'))
    copyFileSync(certs.crl, join(dir, 'ca.crl'))
    const cluster = `cluster: { redis: { url: ${redis.url}, prefix: ${uid('workers')} } }`
    workers = await MoatCluster.start(writeConfig(dir, [cluster]))
    // The same listeners and files in one process, as another instance of the fleet.
    const text = readFileSync(join(dir, 'moat.yaml'), 'utf8').replace('workers: 2\n', '')
    single = await MoatProcess.start(dir, 'single.yaml', (await import('yaml')).parse(text) as Record<string, unknown>)
    for (const deadline = Date.now() + SLOW; workers.find({ event: 'tls_ticket_seed', listener: 'secure', outcome: 'shared' }) === undefined;) {
      if (Date.now() > deadline) throw new Error(`the primary never took the fleet's seed:\n${workers.output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await single.waitForLog((l) => l.event === 'tls_ticket_seed' && l.listener === 'secure' && l.outcome === 'shared')
  }, SLOW)
  afterAll(async () => {
    await workers?.kill()
    await single?.stop()
    await redis?.stop()
  })

  it('the primary takes the fleet\'s seed for its workers: another instance\'s ticket resumes on both workers', async () => {
    const other = Number(single.logs.find((l) => l.event === 'listening' && l.listener === 'secure')!.port)
    const first = await dial(other, ca)
    expect(first.reused).toBe(false)
    const before = await accepted(workers)
    let resumed = 0
    for (let i = 0; i < 20; i++) if ((await dial(workers.port('secure'), ca, { session: first.session! })).reused) resumed += 1
    expect(resumed).toBe(20)
    const after = await accepted(workers)
    expect(after.every((n, i) => n > before[i]!)).toBe(true)
    // And back: a ticket a worker issued resumes on the other instance.
    const fromWorker = await dial(workers.port('secure'), ca)
    expect((await dial(other, ca, { session: fromWorker.session! })).reused).toBe(true)
  })
})
