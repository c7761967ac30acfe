/**
 * Two (or more) Moat processes (node dist/cli.js run) in front of one broker, sharing a store given
 * as a `cluster.redis` section (a Redis URL, a Sentinel set, a Redis Cluster), with raw MQTT
 * clients that tell the CONNACK code and a subscriber on the broker itself that shows what reached
 * it. For the store outage, failover and cluster tests and the failover bench.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate, type IConnackPacket, type Packet } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { brokerKinds, startBroker, type TestBroker } from './broker.js'
import { connectPacket, connectWithInbox, RawClient, uid, type Inbox } from './clients.js'
import { passwordAuth } from './moat.js'
import { MoatProcess } from './moat-process.js'

export const ADMIN_TOKEN = 'test-admin-token-0123456789'
export const USERS = ['alice', 'bob', 'mallory', 'eve', 'trudy', 'victim', 'carol']

export interface FleetOptions {
  /** The `cluster.redis` section (url / sentinel / cluster, onRedisDown, prefix...). */
  readonly redis: Record<string, unknown>
  readonly instances?: number
  /** `limits.connections` (default: perUsername 2). */
  readonly connections?: Record<string, unknown>
  /** More top-level config (listeners are replaced when given). */
  readonly extra?: Record<string, unknown>
}

export interface Attempt {
  readonly code: number
  readonly client: RawClient
  readonly clientId: string
}

export class FleetBench {
  readonly moats: MoatProcess[] = []
  readonly clients: RawClient[] = []
  /** MQTT 5.0 on Mosquitto (reason codes); 3.1.1 on Aedes (return codes). */
  readonly version: 4 | 5
  readonly code: { ok: number; quota: number; banned: number; unavailable: number; badCredentials: number }
  private watcher: { client: MqttClient; inbox: Inbox } | null = null

  private constructor(readonly broker: TestBroker, readonly dir: string) {
    this.version = broker.kind === 'mosquitto' ? 5 : 4
    const v5 = this.version === 5
    this.code = { ok: 0, quota: v5 ? 0x97 : 3, banned: v5 ? 0x8a : 5, unavailable: v5 ? 0x88 : 3, badCredentials: v5 ? 0x86 : 4 }
  }

  static async start(options: FleetOptions): Promise<FleetBench> {
    const broker = await startBroker(brokerKinds()[0]!)
    const bench = new FleetBench(broker, mkdtempSync(join(tmpdir(), 'moat-fleet-')))
    try {
      const auth = await passwordAuth(USERS)
      const config = {
        listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
        upstream: { host: broker.host, port: broker.port },
        admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
        log: { level: 'info' },
        auth: { ...auth, lockout: { maxFailures: 3, window: '5m', ban: '1h', per: ['username'], reply: 'banned' } },
        limits: { connections: options.connections ?? { perUsername: 2 } },
        cluster: { redis: options.redis },
        ...options.extra,
      }
      const n = options.instances ?? 2
      const started = await Promise.all(Array.from({ length: n }, (_, i) => MoatProcess.start(bench.dir, `moat-${i}.yaml`, config)))
      bench.moats.push(...started)
      bench.watcher = await connectWithInbox(broker.port, { clientId: uid('watcher'), protocolVersion: 4 })
      await bench.watcher.client.subscribeAsync('fleet/#')
    } catch (err) {
      await bench.stop()
      throw err
    }
    return bench
  }

  /** CONNECT as `username` through `moat`; on a refusal, checks that the broker got nothing from that client. */
  async connect(moat: MoatProcess, username: string, password = 'pw'): Promise<Attempt> {
    const client = new RawClient(FleetBench.port(moat), this.version)
    this.clients.push(client)
    await client.connected()
    const clientId = uid(username)
    client.send(connectPacket(clientId, this.version, { username, password: Buffer.from(password) }))
    const answer = await client.nextPacket(0, 15_000) as IConnackPacket | null
    const code = answer?.cmd === 'connack' ? (this.version === 5 ? answer.reasonCode ?? 0 : answer.returnCode ?? 0) : -1
    if (code !== 0) {
      await client.closed
      // Refused at CONNECT: Moat never dialled the broker for it, so this is final.
      if (this.broker.received(clientId).length !== 0) throw new Error(`refused client ${clientId} reached the broker: ${this.broker.received(clientId).join(', ')}`)
    }
    return { code, client, clientId }
  }

  /** The port of `moat`'s plain MQTT listener (`mqtt`; a test may add others). */
  static port(moat: MoatProcess): number {
    return Number(moat.logs.find((l) => l.event === 'listening' && l.listener === 'mqtt')!.port)
  }

  /** Publishes through an open session and resolves once the broker's subscriber has the message: the session relays. */
  async relays(attempt: Attempt, text: string): Promise<void> {
    const topic = `fleet/${attempt.clientId}/${text}`
    attempt.client.send(generate({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 0, retain: false, dup: false } as Packet, { protocolVersion: this.version }))
    await this.watcher!.inbox.waitForTopic(topic, 10_000)
  }

  /** Whether an open session is still open and got nothing but its CONNACK (no DISCONNECT, not closed). */
  untouched(attempt: Attempt): boolean {
    return attempt.client.isOpen && attempt.client.packets.every((p) => p.cmd === 'connack')
  }

  /** A metric of every instance. */
  metrics(name: string): Promise<number[]> {
    return Promise.all(this.moats.map((m) => m.metric(name)))
  }

  /** `moat ban add` through the admin API of `moat`. */
  async ban(moat: MoatProcess, target: string, method: 'POST' | 'DELETE' = 'POST'): Promise<void> {
    const url = `http://127.0.0.1:${moat.adminPort}/bans${method === 'DELETE' ? `?target=${encodeURIComponent(target)}` : ''}`
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(method === 'POST' ? { body: JSON.stringify({ target, for: '1h', reason: 'test' }) } : {}),
    })
    if (!res.ok) throw new Error(`${method} /bans ${target}: ${res.status} ${await res.text()}`)
  }

  /** The ban targets `moat` enforces now (its replica, through GET /bans), sorted. */
  async bans(moat: MoatProcess): Promise<string[]> {
    const res = await fetch(`http://127.0.0.1:${moat.adminPort}/bans`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    const body = await res.json() as { bans: Array<{ target: string }> }
    return body.bans.map((b) => b.target).sort()
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy()
    await this.watcher?.client.endAsync().catch(() => {})
    await Promise.all(this.moats.map((m) => m.stop()))
    await this.broker.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
