/**
 * Scale-out (issue 10): two Moat processes (node dist/cli.js run) in front of one broker, sharing
 * fleet-wide limits and bans through a real redis-server. Every refusal is shown from both sides:
 * the client's CONNACK / DISCONNECT, and a broker that got nothing from the refused client.
 */
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parser as createParser, generate, type Packet } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, uid } from '../helpers/clients.js'
import { passwordAuth } from '../helpers/moat.js'
import { runCli, type Run } from '../helpers/cli.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { freePort } from '../helpers/mosquitto.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const TOKEN = 'test-admin-token-0123456789'
const kind = brokerKinds()[0]!
/** Mosquitto speaks 5.0 (reason codes); Aedes only 3.1.1 (return codes). */
const V = kind === 'mosquitto' ? 5 : 4
const code = {
  ok: 0,
  quota: V === 5 ? 0x97 : 3,
  banned: V === 5 ? 0x8a : 5,
  unavailable: V === 5 ? 0x88 : 3,
}

/** A raw MQTT client (optionally from another loopback address): packets received, and whether it closed. */
class Raw {
  readonly socket: net.Socket
  readonly packets: Packet[] = []
  closed = false
  private readonly waiters = new Set<() => void>()

  constructor(port: number, localAddress?: string) {
    this.socket = net.connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) })
    const p = createParser({ protocolVersion: V })
    p.on('packet', (packet: Packet) => {
      this.packets.push(packet)
      this.wake()
    })
    p.on('error', () => {})
    this.socket.on('data', (d: Buffer) => p.parse(d))
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  private wake(): void {
    for (const w of this.waiters) w()
  }

  /** Resolves when `done()` holds (checked on every packet and on close). */
  until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiters.delete(check); reject(new Error(`timed out; packets: ${JSON.stringify(this.packets.map((p) => p.cmd))}`)) }, timeoutMs)
      const check = (): void => {
        if (!done()) return
        clearTimeout(timer)
        this.waiters.delete(check)
        resolve()
      }
      this.waiters.add(check)
      check()
    })
  }

  send(packet: Packet): void {
    this.socket.write(generate(packet, { protocolVersion: V }))
  }

  /** Sends CONNECT; resolves with the CONNACK code (reasonCode on 5.0, returnCode on 3.1.1). */
  async connect(clientId: string, username: string, password = 'pw'): Promise<number> {
    this.send(connectPacket(clientId, V, { username, password: Buffer.from(password) }))
    await this.until(() => this.packets.some((p) => p.cmd === 'connack') || this.closed)
    const connack = this.packets.find((p) => p.cmd === 'connack') as { reasonCode?: number; returnCode?: number } | undefined
    if (connack === undefined) return -1
    return (V === 5 ? connack.reasonCode : connack.returnCode) ?? 0
  }

  close(): void {
    this.socket.destroy()
  }
}

const run = (args: string[], env: Record<string, string> = {}): Promise<Run> => runCli(args, { env: { ...process.env, ...env } })

let broker: TestBroker
let redis: RedisServer
let dir: string
let auth: Record<string, unknown>
let a: MoatProcess
let b: MoatProcess
const open: Raw[] = []

function client(moat: MoatProcess, localAddress?: string): Raw {
  const raw = new Raw(moat.port, localAddress)
  open.push(raw)
  return raw
}

function configFor(prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: broker.host, port: broker.port },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    log: { level: 'info' },
    auth: { ...auth, lockout: { maxFailures: 3, window: '1m', ban: '1h', per: ['username'], reply: 'banned' } },
    limits: { connections: { perUsername: 3 } },
    cluster: { redis: { url: redis.url, prefix, onRedisDown: { connections: 'fail-closed' } } },
    ...extra,
  }
}

beforeAll(async () => {
  broker = await startBroker(kind)
  redis = await startRedis()
  dir = mkdtempSync(join(tmpdir(), 'moat-cluster-'))
  auth = await passwordAuth(['alice', 'mallory', 'victim', 'carol'])
  const prefix = uid('fleet')
  ;[a, b] = await Promise.all([MoatProcess.start(dir, 'a.yaml', configFor(prefix)), MoatProcess.start(dir, 'b.yaml', configFor(prefix))])
}, 120_000)

afterAll(async () => {
  for (const raw of open) raw.close()
  await Promise.all([a?.stop(), b?.stop()])
  await redis?.stop()
  await broker?.stop()
})

// Each test spawns `moat` processes (the CLI): generous timeouts for a loaded machine.
describe('two Moat processes sharing Redis', { timeout: 120_000 }, () => {
  it('both instances report the shared store up', async () => {
    expect(await a.metric('moat_cluster_store_up')).toBe(1)
    expect(await b.metric('moat_cluster_store_up')).toBe(1)
  })

  it('holds a per-user limit of 3 connections across both instances, and frees a slot when one ends', async () => {
    const held: Raw[] = []
    for (const moat of [a, a, b]) {
      const raw = client(moat)
      expect(await raw.connect(uid('alice'), 'alice')).toBe(code.ok)
      held.push(raw)
    }
    // The 4th, on either instance: refused, and the broker never hears of it.
    const before = broker.connections()
    for (const moat of [b, a]) {
      const id = uid('alice-4th')
      const raw = client(moat)
      expect(await raw.connect(id, 'alice')).toBe(code.quota)
      await raw.until(() => raw.closed)
      expect(broker.received(id)).toEqual([])
    }
    expect(broker.connections()).toBe(before)
    // One of alice's sessions on A ends: a new one on B is admitted (the release reaches Redis).
    held[0]!.close()
    await expect.poll(async () => {
      const raw = client(b)
      const c = await raw.connect(uid('alice-again'), 'alice')
      if (c !== code.ok) raw.close()
      return c
    }, { timeout: 10_000, interval: 200 }).toBe(code.ok)
  })

  it('a ban made on one instance (moat ban add) closes open sessions and refuses new ones on the other', async () => {
    const victimId = uid('mallory')
    const before = client(b)
    expect(await before.connect(victimId, 'mallory')).toBe(code.ok)

    const added = await run(['ban', 'add', 'user:mallory', '--for', '1h', '--reason', 'test', '--admin', `http://127.0.0.1:${a.adminPort}`], { MOAT_ADMIN_TOKEN: TOKEN })
    expect(added.stderr).toBe('')
    expect(added.code).toBe(0)
    expect(added.stdout).toMatch(/^banned user:mallory until \d{4}-/)

    // The open session on B is closed (5.0: DISCONNECT 0x98 Administrative action, as 0x8A is CONNACK-only; 3.1.1: closed).
    await before.until(() => before.closed)
    if (V === 5) expect(before.packets.find((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x98 })
    // A new one on B: refused Banned, nothing reaches the broker.
    const id = uid('mallory-new')
    const raw = client(b)
    expect(await raw.connect(id, 'mallory')).toBe(code.banned)
    expect(broker.received(id)).toEqual([])

    const listed = await run(['ban', 'list', '--admin', `http://127.0.0.1:${b.adminPort}`, '--token', TOKEN])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(/^user:mallory\tuntil \d{4}-.*\tadmin\ttest$/m)

    const removed = await run(['ban', 'remove', 'user:mallory', '--admin', `http://127.0.0.1:${b.adminPort}`, '--token', TOKEN])
    expect(removed.code).toBe(0)
    await expect.poll(async () => {
      const again = client(a)
      const c = await again.connect(uid('mallory-after'), 'mallory')
      again.close()
      return c
    }, { timeout: 5000, interval: 100 }).toBe(code.ok)
  })

  it('an address (CIDR) ban from one instance refuses that address on the other at accept', async () => {
    const added = await run(['ban', 'add', '127.0.0.4/30', '--admin', `http://127.0.0.1:${a.adminPort}`, '--token', TOKEN])
    expect(added.code).toBe(0)
    await expect.poll(async () => {
      const raw = client(b, '127.0.0.5')
      const id = uid('from-5')
      const c = await raw.connect(id, 'carol')
      expect(broker.received(id)).toEqual([])
      raw.close()
      return c
    }, { timeout: 5000, interval: 100 }).toBe(code.banned)
    // Other addresses are not touched.
    const ok = client(b, '127.0.0.1')
    expect(await ok.connect(uid('from-1'), 'carol')).toBe(code.ok)
    ok.close()
    expect((await run(['ban', 'remove', '127.0.0.4/30', '--admin', `http://127.0.0.1:${b.adminPort}`, '--token', TOKEN])).code).toBe(0)
  })

  it('failed logins counted across instances ban the user name on every instance (lockout)', async () => {
    // 2 failures on A and 1 on B: neither instance alone reaches maxFailures (3); the fleet does.
    for (const moat of [a, b, a]) {
      const raw = client(moat)
      expect(await raw.connect(uid('victim-bad'), 'victim', 'wrong')).toBe(V === 5 ? 0x86 : 4)
    }
    await expect.poll(async () => {
      const id = uid('victim-good')
      const raw = client(b)
      const c = await raw.connect(id, 'victim')
      raw.close()
      expect(broker.received(id)).toEqual([])
      return c
    }, { timeout: 5000, interval: 100 }).toBe(code.banned)
    const listed = await run(['ban', 'list', '--admin', `http://127.0.0.1:${a.adminPort}`, '--token', TOKEN])
    expect(listed.stdout).toMatch(/^user:victim\tuntil .*\tlockout\t3 failed logins$/m)
  })

  it('the ban API refuses a wrong token, and moat ban says why with exit code 1', async () => {
    const result = await run(['ban', 'list', '--admin', `http://127.0.0.1:${a.adminPort}`, '--token', 'not-the-token-at-all'])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/Bearer token is required/)
    const closed = await freePort() // nothing listens there
    const unreachable = await run(['ban', 'list', '--admin', `http://127.0.0.1:${closed}`, '--token', TOKEN])
    expect(unreachable.code).toBe(1)
    expect(unreachable.stderr).toBe(`moat: cannot reach the admin endpoint at http://127.0.0.1:${closed}: ECONNREFUSED [MOAT_ERR_BAN]\n`)
    const usage = await run(['ban', 'add', 'not-an-address', '--token', TOKEN])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/'not-an-address' is not an address, a CIDR, user:NAME or client:ID/)
  })

  it('Redis stopped: open sessions keep relaying, new CONNECTs fail closed (connections: fail-closed); back: limits hold again', async () => {
    // carol holds a session through A, subscribed on the broker side by a direct subscriber.
    const topic = `fleet/${uid('t')}`
    const watcher = new Raw(broker.port)
    open.push(watcher)
    expect(await watcher.connect(uid('watcher'), 'watcher')).toBe(0)
    watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] } as Packet)
    await watcher.until(() => watcher.packets.some((p) => p.cmd === 'suback'))
    const carol = client(a)
    expect(await carol.connect(uid('carol'), 'carol')).toBe(code.ok)

    await redis.stop()
    await expect.poll(() => a.metric('moat_cluster_store_up'), { timeout: 10_000 }).toBe(0)
    await expect.poll(() => b.metric('moat_cluster_store_up'), { timeout: 10_000 }).toBe(0)
    expect(a.logs.some((l) => l.event === 'cluster_store_down')).toBe(true)

    // An established session is never blocked by the outage.
    carol.send({ cmd: 'publish', topic, payload: Buffer.from('during outage'), qos: 0, retain: false, dup: false } as Packet)
    await watcher.until(() => watcher.packets.some((p) => p.cmd === 'publish' && (p as { payload: Buffer }).payload.toString() === 'during outage'))

    // A new CONNECT that needs a fleet-wide count: refused as server unavailable; the broker gets nothing.
    const id = uid('carol-down')
    const refused = client(b)
    expect(await refused.connect(id, 'carol')).toBe(code.unavailable)
    expect(broker.received(id)).toEqual([])

    // Redis comes back (empty: no persistence). Each instance re-asserts the slots it holds.
    await redis.start()
    await expect.poll(() => a.metric('moat_cluster_store_up'), { timeout: 10_000 }).toBe(1)
    await expect.poll(() => b.metric('moat_cluster_store_up'), { timeout: 10_000 }).toBe(1)
    expect(a.logs.some((l) => l.event === 'cluster_store_up' && /again/.test(String(l.msg)))).toBe(true)
    const back = client(b)
    expect(await back.connect(uid('carol-back'), 'carol')).toBe(code.ok)
    // alice still holds 3 sessions (from the first test): re-asserted, so a 4th is still refused.
    const fourth = client(a)
    const fourthId = uid('alice-after-outage')
    expect(await fourth.connect(fourthId, 'alice')).toBe(code.quota)
    expect(broker.received(fourthId)).toEqual([])
    const transitions = await (await fetch(`http://127.0.0.1:${a.adminPort}/metrics`)).text()
    expect(transitions).toMatch(/moat_cluster_store_transitions_total\{to="down"\} [1-9]/)
  })
})
