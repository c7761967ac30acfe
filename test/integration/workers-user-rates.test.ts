/**
 * Per-user message rates with `workers: 2` (node dist/cli.js, a real Mosquitto, MQTT.js clients):
 * one user publishing flat out through connections spread over both workers gets the configured
 * rate in total, not twice it — without Redis (the primary's fleet buckets, leased over IPC) and
 * with cluster.redis (each worker leases from Redis like an instance). What is over is answered
 * PUBACK 0x97 (`drop`, MQTT 5.0, QoS 1) and a subscriber on the broker itself receives exactly what
 * was accepted. A primary that does not answer (stopped) makes its workers fall back to their own
 * buckets: logged once per transition, counted in the merged metrics, and leasing resumes. Counts
 * against the configured rate with the slack of the accuracy bound (docs/limits.md), never timings.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { brokerWatch, connect, uid } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { passwordAuth } from '../helpers/moat.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const RATE = 40 // messages/s for the user, whatever the worker
/** The bound's constant part, in messages: fleet bucket (8) + what 2 workers may hold (2 × 8) + 2 advances (2 × 4) + a packet each. */
const SLACK = 8 + 16 + 8 + 2
const RUN_MS = 3000
const CLIENTS = 6
const TOKEN = 'workers-user-rates-token-0123456789'
const SLOW = 120_000

interface Run { accepted: number; refused: number; byWorker: Map<number, { accepted: number; refused: number }>; seconds: number }

let broker: TestBroker
let redis: RedisServer
let auth: Record<string, unknown>
const open: MqttClient[] = []

async function start(name: string, extra: string[] = []): Promise<MoatCluster> {
  const file = join(mkdtempSync(join(tmpdir(), `moat-workers-rates-${name}-`)), 'moat.yaml')
  writeFileSync(file, [
    'workers: 2',
    'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
    `upstream: { host: ${broker.host}, port: ${broker.port} }`,
    `admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }`,
    `auth: ${JSON.stringify(auth)}`,
    `limits: { perUsername: { messageRate: ${RATE}/s, burst: 100ms, onExcess: drop } }`,
    ...extra,
  ].join('\n') + '\n')
  return MoatCluster.start(file)
}

/** Which worker holds each client id now (the sessions view of the primary's admin endpoint). */
async function workersOf(moat: MoatCluster): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${moat.adminPort}/sessions?scope=local`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(res.status).toBe(200)
  const { sessions } = await res.json() as { sessions: Array<{ clientId: string; worker: number }> }
  return new Map(sessions.map((r) => [r.clientId, r.worker]))
}

/** CLIENTS connections as alice (MQTT 5.0), checked to be spread over both workers. */
async function spread(moat: MoatCluster): Promise<Array<{ client: MqttClient; worker: number }>> {
  const clients: Array<{ client: MqttClient; id: string }> = []
  for (let i = 0; i < CLIENTS; i++) {
    const id = uid('alice')
    const client = await connect(moat.port('mqtt'), { protocolVersion: 5, clientId: id, username: 'alice', password: 'pw', reconnectPeriod: 0 })
    open.push(client)
    clients.push({ client, id })
  }
  const workers = await workersOf(moat)
  const out = clients.map(({ client, id }) => ({ client, worker: workers.get(id)! }))
  // node:cluster hands connections to the workers in turn: both hold some.
  expect(new Set(out.map((c) => c.worker))).toEqual(new Set([1, 2]))
  return out
}

/** Every client publishes QoS 1 on `topic` every 20 ms for RUN_MS (300 messages/s together); every PUBACK awaited. */
async function flatOut(clients: Array<{ client: MqttClient; worker: number }>, topic: string): Promise<Run> {
  const run: Run = { accepted: 0, refused: 0, byWorker: new Map([[1, { accepted: 0, refused: 0 }], [2, { accepted: 0, refused: 0 }]]), seconds: 0 }
  const other: unknown[] = []
  const acks: Array<Promise<void>> = []
  const started = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      for (const { client, worker } of clients) {
        const w = run.byWorker.get(worker)!
        acks.push(client.publishAsync(topic, 'm', { qos: 1 }).then(() => {
          run.accepted += 1
          w.accepted += 1
        }, (err: { code?: number }) => {
          if (err.code === 0x97) {
            run.refused += 1
            w.refused += 1
          } else other.push(err)
        }))
      }
      if (performance.now() - started >= RUN_MS) {
        clearInterval(timer)
        resolve()
      }
    }, 20)
  })
  await Promise.all(acks)
  run.seconds = (performance.now() - started) / 1000
  expect(other).toEqual([])
  return run
}

/** The run held to the fleet-wide rate, both workers part of it, the broker given only what was accepted. */
async function expectFleetWide(run: Run, watcher: { count: () => number }): Promise<void> {
  // Per worker alone this would be about 2 × RATE × seconds; fleet-wide it is bounded by the rate.
  expect(run.accepted).toBeLessThanOrEqual(Math.ceil(RATE * run.seconds * 1.25) + SLACK)
  expect(run.accepted).toBeLessThan(2 * RATE * run.seconds)
  expect(run.accepted).toBeGreaterThanOrEqual(Math.floor(RATE * run.seconds * 0.5))
  for (const worker of [1, 2]) {
    expect(run.byWorker.get(worker)!.accepted).toBeGreaterThan(0)
    expect(run.byWorker.get(worker)!.refused).toBeGreaterThan(0)
  }
  // The broker received exactly the accepted messages: none of the refused ones.
  await vi.waitFor(() => expect(watcher.count()).toBe(run.accepted), { timeout: 10_000 })
  expect(watcher.count()).toBe(run.accepted)
}

beforeAll(async () => {
  broker = await startBroker('mosquitto')
  redis = await startRedis()
  auth = await passwordAuth(['alice'])
}, SLOW)

afterAll(async () => {
  await Promise.all(open.map((c) => c.endAsync(true)))
  await redis?.stop()
  await broker?.stop()
})

for (const kind of brokerKinds().filter((k) => k === 'mosquitto')) {
  describe(`per-user rates across workers: 2, without Redis (${kind})`, { timeout: SLOW }, () => {
    let moat: MoatCluster
    let clients: Array<{ client: MqttClient; worker: number }>

    beforeAll(async () => {
      moat = await start('ipc')
      clients = await spread(moat)
    }, SLOW)

    afterAll(async () => {
      await moat?.kill()
    })

    it('holds one user spread over both workers to about the configured rate; the broker gets only what was accepted', async () => {
      const topic = uid('workers/rate')
      const watcher = await brokerWatch(broker.port, topic)
      const run = await flatOut(clients, topic)
      await expectFleetWide(run, watcher)
      await watcher.end()
      // The workers leased over IPC (their renewals counted), and never fell back.
      expect(await moat.value('moat_cluster_store_calls_total{op="rate_leases"}')).toBeGreaterThan(0)
      expect(await moat.value('moat_cluster_rate_lease_fallbacks_total')).toBe(0)
      expect(moat.all({ event: 'user_rate_leases', outcome: 'local' })).toEqual([])
      expect(moat.all({ event: 'user_rate_leases', outcome: 'fleet', source: 'the cluster primary' }).map((l) => l.worker).sort()).toEqual([1, 2])
    })

    it('a primary that does not answer (stopped) makes its workers fall back to their own buckets: logged once per transition, counted; leasing resumes', async () => {
      const topic = uid('workers/stopped')
      const watcher = await brokerWatch(broker.port, topic)
      const pid = moat.child.pid!
      // Publishing while the primary is stopped: the workers' renewals go unanswered.
      const running = flatOut(clients, topic)
      await vi.waitFor(() => expect(moat.all({ event: 'user_rate_leases', outcome: 'fleet' }).length).toBeGreaterThanOrEqual(2), { timeout: 5000 })
      process.kill(pid, 'SIGSTOP')
      try {
        await vi.waitFor(() => expect(moat.all({ event: 'user_rate_leases', outcome: 'local' }).length).toBeGreaterThanOrEqual(1), { timeout: 10_000 })
      } finally {
        process.kill(pid, 'SIGCONT')
      }
      const run = await running
      await vi.waitFor(() => expect(watcher.count()).toBe(run.accepted), { timeout: 10_000 })
      await watcher.end()
      // Every fallback logged (once per transition, by the worker that fell back) and counted in the merged metrics.
      const fallbacks = moat.all({ event: 'user_rate_leases', outcome: 'local' })
      expect(fallbacks.every((l) => l.source === 'the cluster primary' && (l.worker === 1 || l.worker === 2))).toBe(true)
      expect(await moat.value('moat_cluster_rate_lease_fallbacks_total')).toBe(fallbacks.length)
      // Leasing resumes: each worker's last transition is back to fleet-wide.
      await vi.waitFor(() => {
        for (const worker of [1, 2]) {
          const lines = moat.all({ event: 'user_rate_leases', worker })
          expect(lines.at(-1)?.outcome).toBe('fleet')
        }
      }, { timeout: 15_000 })
      const again = uid('workers/again')
      const watcher2 = await brokerWatch(broker.port, again)
      const back = await flatOut(clients, again)
      await expectFleetWide(back, watcher2)
      await watcher2.end()
    })
  })

  describe(`per-user rates across workers: 2, with cluster.redis (${kind})`, { timeout: SLOW }, () => {
    let moat: MoatCluster

    afterAll(async () => {
      await moat?.kill()
    })

    it('each worker leases from Redis like an instance: the rate holds across the workers', async () => {
      moat = await start('redis', [`cluster: { redis: { url: "${redis.url}", prefix: ${uid('wrates')} } }`])
      await vi.waitFor(() => expect(moat.all({ event: 'user_rate_leases', outcome: 'fleet', source: 'redis' }).map((l) => l.worker).sort()).toEqual([1, 2]), { timeout: 10_000 })
      const clients = await spread(moat)
      const topic = uid('workers/redis')
      const watcher = await brokerWatch(broker.port, topic)
      const run = await flatOut(clients, topic)
      await expectFleetWide(run, watcher)
      await watcher.end()
      expect(await moat.value('moat_cluster_store_calls_total{op="rate_leases"}')).toBeGreaterThan(0)
    })
  })
}
