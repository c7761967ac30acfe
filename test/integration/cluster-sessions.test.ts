/**
 * The fleet's sessions view: two Moat processes (node dist/cli.js) sharing a real redis-server in
 * front of one broker. `moat sessions list` asked of A lists the clients of A and B, each with its
 * instance; `moat sessions kick` asked of A kicks a client held by B. An instance that advertises
 * no admin URL (admin on 0.0.0.0 without admin.advertise) is reported, never silently missing.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { runCli, type Run } from '../helpers/cli.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN = 'fleet-sessions-token-0123456789'
const kind = brokerKinds()[0]!
const V = brokerVersions(kind).includes(5) ? 5 : 4

const run = (args: string[]): Promise<Run> => runCli(args, { env: { ...process.env, MOAT_ADMIN_TOKEN: TOKEN } })

let broker: TestBroker
let redis: RedisServer
let dir: string
let prefix: string
let a: MoatProcess
let b: MoatProcess
const raws: RawClient[] = []

function configFor(adminHost = '127.0.0.1'): Record<string, unknown> {
  return {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: broker.host, port: broker.port },
    admin: { host: adminHost, port: 0, token: TOKEN },
    log: { level: 'info' },
    auth: { anonymous: true },
    cluster: { redis: { url: redis.url, prefix } },
  }
}

async function session(moat: MoatProcess, clientId: string): Promise<RawClient> {
  const raw = new RawClient(moat.port, V)
  raws.push(raw)
  await raw.connected()
  raw.send(connectPacket(clientId, V))
  expect((await raw.nextPacket())?.cmd).toBe('connack')
  return raw
}

function instanceOf(moat: MoatProcess): string {
  return moat.logs.find((l) => l.event === 'admin_advertised')!.instance as string
}

beforeAll(async () => {
  broker = await startBroker(kind)
  redis = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'moat-fleet-sessions-'))
  prefix = uid('sessions')
  ;[a, b] = await Promise.all([MoatProcess.start(dir, 'a.yaml', configFor()), MoatProcess.start(dir, 'b.yaml', configFor())])
}, 120_000)

afterAll(async () => {
  for (const raw of raws) raw.destroy()
  await Promise.all([a?.stop(), b?.stop()])
  await redis?.stop()
  await broker?.stop()
})

describe('the sessions view across two Moat processes sharing Redis', { timeout: 120_000 }, () => {
  it('lists the clients of both instances through A, each with its instance', async () => {
    const onA = uid('on-a')
    const onB = uid('on-b')
    await session(a, onA)
    await session(b, onB)
    const admin = `http://127.0.0.1:${a.adminPort}`
    expect(a.logs.find((l) => l.event === 'admin_advertised')).toMatchObject({ url: admin })
    const listed = await run(['sessions', 'list', '--admin', admin])
    expect(listed.stderr).toBe('')
    expect(listed.code).toBe(0)
    const rows = listed.stdout.trim().split('\n').map((l) => l.split('\t'))
    expect(rows.map((r) => [r[0], r[6]])).toEqual([[onA, instanceOf(a)], [onB, instanceOf(b)]].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)))
    // --local: A's own only.
    const local = await run(['sessions', 'list', '--local', '--admin', admin])
    expect(local.stdout.trim().split('\n').map((l) => l.split('\t')[0])).toEqual([onA])
    // JSON: every instance that answered is named.
    const json = await run(['sessions', 'list', '--json', '--admin', admin, '--client-id', onB])
    const answer = JSON.parse(json.stdout) as { sessions: Array<{ clientId: string; instance: string }>; instances: Array<{ instance: string; ok: boolean }> }
    expect(answer.sessions).toMatchObject([{ clientId: onB, instance: instanceOf(b) }])
    expect(answer.instances.map((s) => [s.instance, s.ok]).sort()).toEqual([[instanceOf(a), true], [instanceOf(b), true]].sort())
  })

  it('kicks through A a client held by B: it gets its answer and the broker sees it go', async () => {
    const id = uid('kick-on-b')
    const raw = await session(b, id)
    const kicked = await run(['sessions', 'kick', id, '--admin', `http://127.0.0.1:${a.adminPort}`])
    expect(kicked.stderr).toBe('')
    expect(kicked.code).toBe(0)
    expect(kicked.stdout).toMatch(new RegExp(`^kicked ${id} \\(anonymous, 127\\.0\\.0\\.1:\\d+\\) on ${instanceOf(b)}\\n$`))
    await raw.closed
    if (V === 5) expect(raw.packets.find((p: Packet) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x98 })
    await broker.clientGone(id)
    // B wrote the audit line, naming A as the instance that passed the request on.
    await b.waitForLog((l) => l.event === 'session_kicked' && l.clientId === id)
    expect(b.logs.find((l) => l.event === 'session_kicked' && l.clientId === id)).toMatchObject({ audit: true, via: instanceOf(a), by: '127.0.0.1' })
    expect(JSON.stringify(b.logs)).not.toContain(TOKEN)
    // Gone from the fleet's list.
    const listed = await run(['sessions', 'list', '--client-id', id, '--admin', `http://127.0.0.1:${a.adminPort}`])
    expect(listed.stdout).toBe('no sessions\n')
  })

  it('reports an instance it cannot ask (no advertised admin URL), and exits 3', async () => {
    const c = await MoatProcess.start(dir, 'c.yaml', configFor('0.0.0.0'))
    try {
      const warned = c.logs.find((l) => l.event === 'admin_not_advertised')!
      expect(warned).toMatchObject({ host: '0.0.0.0' })
      const onC = uid('on-c')
      await session(c, onC)
      const listed = await run(['sessions', 'list', '--admin', `http://127.0.0.1:${a.adminPort}`])
      expect(listed.code).toBe(3)
      expect(listed.stderr).toBe(`moat: not answered: ${warned.instance as string}: advertises no admin endpoint (admin.advertise, docs/sessions.md): not asked\n`)
      expect(listed.stdout).not.toContain(onC)
    } finally {
      await c.stop()
    }
    // Stopped: it left the heartbeat set, so it is no longer reported.
    await vi.waitFor(async () => expect((await run(['sessions', 'list', '--admin', `http://127.0.0.1:${a.adminPort}`])).code).toBe(0), { timeout: 15_000, interval: 500 })
  })
})
