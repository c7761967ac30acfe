/**
 * The sessions view with `workers: 2` (node dist/cli.js): the primary serves the admin endpoint and
 * asks its workers over IPC, so both workers' sessions are listed and a client on either is kicked.
 * With cluster.redis, a single instance of the same fleet lists them too: the workers' own store
 * heartbeats are named as served by their primary, not reported as instances that cannot be asked.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { runCli, type Run } from '../helpers/cli.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN = 'workers-sessions-token-0123456789'
const kind = brokerKinds()[0]!
const V = brokerVersions(kind).includes(5) ? 5 : 4

const run = (args: string[]): Promise<Run> => runCli(args, { env: { ...process.env, MOAT_ADMIN_TOKEN: TOKEN } })

interface Row { clientId: string; worker?: number; instance?: string }

let broker: TestBroker
let redis: RedisServer
let cluster: MoatCluster
let single: MoatProcess
const raws: RawClient[] = []

beforeAll(async () => {
  broker = await startBroker(kind)
  redis = await startRedis()
  const dir = mkdtempSync(join(tmpdir(), 'moat-workers-sessions-'))
  const prefix = uid('wsessions')
  const file = join(dir, 'moat.yaml')
  writeFileSync(file, [
    'workers: 2',
    'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
    `upstream: { host: ${broker.host}, port: ${broker.port} }`,
    `admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }`,
    'auth: { anonymous: true }',
    `cluster: { redis: { url: "${redis.url}", prefix: ${prefix} } }`,
  ].join('\n') + '\n')
  cluster = await MoatCluster.start(file)
  single = await MoatProcess.start(dir, 'single.yaml', {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: broker.host, port: broker.port },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    auth: { anonymous: true },
    cluster: { redis: { url: redis.url, prefix } },
  })
}, 120_000)

afterAll(async () => {
  for (const raw of raws) raw.destroy()
  await single?.stop()
  await cluster?.kill()
  await redis?.stop()
  await broker?.stop()
})

async function list(port: number, query = ''): Promise<{ sessions: Row[]; instances: Array<{ ok: boolean }> }> {
  const res = await fetch(`http://127.0.0.1:${port}/sessions${query}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status).toBe(200)
  return await res.json() as { sessions: Row[]; instances: Array<{ ok: boolean }> }
}

describe('the sessions view with workers: 2', { timeout: 120_000 }, () => {
  const ids: string[] = []

  it('lists the sessions of both workers, and kicks a client on either', async () => {
    // node:cluster hands connections to the workers in turn: a few clients land on both.
    for (let i = 0; i < 6; i++) {
      const id = uid('w')
      const raw = new RawClient(cluster.port('mqtt'), V)
      raws.push(raw)
      await raw.connected()
      raw.send(connectPacket(id, V))
      expect((await raw.nextPacket())?.cmd).toBe('connack')
      ids.push(id)
    }
    const { sessions, instances } = await list(cluster.adminPort, '?scope=local')
    expect(sessions.map((r) => r.clientId)).toEqual([...ids].sort())
    expect(new Set(sessions.map((r) => r.worker))).toEqual(new Set([1, 2]))
    expect(instances.every((s) => s.ok)).toBe(true)

    for (const worker of [1, 2]) {
      const id = sessions.find((r) => r.worker === worker)!.clientId
      const kicked = await run(['sessions', 'kick', id, '--admin', `http://127.0.0.1:${cluster.adminPort}`])
      expect(kicked.stderr).toBe('')
      expect(kicked.code).toBe(0)
      expect(kicked.stdout).toMatch(new RegExp(`^kicked ${id} .* worker ${worker}\\n$`))
      await broker.clientGone(id)
      const raw = raws[ids.indexOf(id)]!
      await raw.closed
      if (V === 5) expect(raw.packets.find((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x98 })
      ids.splice(ids.indexOf(id), 1)
      raws.splice(raws.indexOf(raw), 1)
    }
    expect((await list(cluster.adminPort)).sessions.map((r) => r.clientId)).toEqual([...ids].sort())
  })

  it('a single instance of the same fleet lists the workers\' sessions through their primary', async () => {
    const primary = cluster.find({ event: 'admin_advertised' })!.instance as string
    await vi.waitFor(async () => {
      const listed = await run(['sessions', 'list', '--admin', `http://127.0.0.1:${single.adminPort}`])
      expect(listed.stderr).toBe('')
      expect(listed.code).toBe(0)
      const rows = listed.stdout.trim().split('\n').map((l) => l.split('\t'))
      expect(rows.map((r) => r[0])).toEqual([...ids].sort())
      expect(rows.every((r) => /^(.+) worker [12]$/.exec(r[6]!)?.[1] === primary)).toBe(true)
    }, { timeout: 15_000, interval: 500 })
  })
})
