/**
 * Fleet-wide per-user message rates (`limits.perUsername` with `cluster.redis`): two Moat instances
 * in this process, a real redis-server and a real Mosquitto. One user publishes flat out through
 * both instances at once (QoS 1, MQTT 5.0, `onExcess: drop`): together they get about the
 * configured rate, not twice it; what is over is answered PUBACK 0x97 by Moat and a subscriber on
 * the broker itself receives exactly what was accepted. With Redis stopped each instance falls back
 * to its own bucket (each gets about the full rate), logged once and counted; with Redis back the
 * instances lease again. Counts against the configured rate over the measured window, with the
 * slack of the accuracy bound (docs/limits.md), never timings.
 */
import { Writable } from 'node:stream'
import type { IPubackPacket } from 'mqtt-packet'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Moat } from '../../src/moat.js'
import { storeOpIndex } from '../../src/stats/fleet-stats.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { brokerWatch, connectPacket, RawClient, uid } from '../helpers/clients.js'
import { limitsFrom, passwordAuth, testAuth, testConfig } from '../helpers/moat.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const RATE = 40 // messages/s, fleet-wide
/**
 * The bound's constant part (limits/budget-leases.ts), in messages: fleet bucket (8: two 100 ms
 * periods of 40/s) + what 2 instances may hold (2 × 8) + 2 advances (2 × 4: the 100 ms burst) + a
 * packet each.
 */
const SLACK = 8 + 16 + 8 + 2
const RUN_MS = 3000

interface Run { accepted: number[]; refused: number[]; seconds: number }

/** Each client publishes QoS 1 on `topic` at about 200 messages/s for RUN_MS; every PUBACK awaited. */
async function flatOut(clients: RawClient[], topic: string): Promise<Run> {
  const sent = clients.map(() => 0)
  const started = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      clients.forEach((c, i) => {
        for (let k = 0; k < 2; k++) {
          sent[i]! += 1
          c.send(generate({ cmd: 'publish', topic, payload: Buffer.from(String(sent[i])), qos: 1, messageId: sent[i]!, retain: false, dup: false }, { protocolVersion: 5 }))
        }
      })
      if (performance.now() - started >= RUN_MS) {
        clearInterval(timer)
        resolve()
      }
    }, 10)
  })
  const acks = (c: RawClient): IPubackPacket[] => c.packets.filter((p) => p.cmd === 'puback') as IPubackPacket[]
  await vi.waitFor(() => clients.forEach((c, i) => expect(acks(c).length).toBe(sent[i])), { timeout: 15_000, interval: 50 })
  const seconds = (performance.now() - started) / 1000
  const accepted = clients.map((c) => acks(c).filter((p) => (p.reasonCode ?? 0) === 0).length)
  const refused = clients.map((c) => acks(c).filter((p) => p.reasonCode === 0x97).length)
  clients.forEach((c, i) => expect(accepted[i]! + refused[i]!).toBe(sent[i]))
  return { accepted, refused, seconds }
}

for (const kind of brokerKinds().filter((k) => k === 'mosquitto')) {
  describe(`fleet-wide per-user rates (${kind}, redis)`, () => {
    let broker: TestBroker
    let redis: RedisServer
    let a: Moat
    let b: Moat
    const logs: Array<Record<string, unknown>> = []
    const clients: RawClient[] = []

    async function session(moat: Moat): Promise<RawClient> {
      const raw = new RawClient(moat.address().port, 5)
      clients.push(raw)
      await raw.connected()
      raw.send(connectPacket(uid('u'), 5, { username: 'alice', password: Buffer.from('pw') }))
      const connack = await raw.nextPacket()
      expect(connack).toMatchObject({ cmd: 'connack', reasonCode: 0 })
      return raw
    }

    beforeAll(async () => {
      broker = await startBroker(kind)
      redis = await startRedis()
      const auth = testAuth(await passwordAuth(['alice']))
      const prefix = uid('rates')
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const line of chunk.toString().split('\n')) if (line !== '') logs.push({ ...JSON.parse(line) as Record<string, unknown> })
          done()
        },
      })
      const make = (name: string): Moat => new Moat({
        ...testConfig(broker, { limits: limitsFrom({ perUsername: { messageRate: `${RATE}/s`, burst: '100ms', onExcess: 'drop' } }) }),
        auth,
        cluster: { redis: { mode: 'url', url: redis.url, sentinel: null, nodes: [], tls: false, passwordFile: null, prefix, commandTimeoutMs: 300, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' } } },
      }, { logger: pino({ level: 'info', base: { moat: name } }, sink) })
      a = make('a')
      b = make('b')
      await Promise.all([a.start(), b.start()])
      await vi.waitFor(() => expect(a.userBudgets!.fleetWide && b.userBudgets!.fleetWide).toBe(true), { timeout: 5000 })
    })

    afterAll(async () => {
      for (const c of clients) c.destroy()
      await Promise.all([a?.shutdown(0), b?.shutdown(0)])
      await redis?.stop()
      await broker?.stop()
    })

    it('holds one user publishing through two instances to about the fleet-wide rate; the broker gets only what was accepted', async () => {
      const topic = uid('fleet/rate')
      const watcher = await brokerWatch(broker.port, topic)
      const run = await flatOut([await session(a), await session(b)], topic)
      const total = run.accepted[0]! + run.accepted[1]!
      // Per instance alone this would be about 2 × RATE × seconds; fleet-wide it is bounded by the rate.
      expect(total).toBeLessThanOrEqual(Math.ceil(RATE * run.seconds * 1.25) + SLACK)
      expect(total).toBeLessThan(2 * RATE * run.seconds)
      expect(total).toBeGreaterThanOrEqual(Math.floor(RATE * run.seconds * 0.5))
      // Both instances refused what was over (PUBACK 0x97), and both got a share.
      expect(run.refused[0]).toBeGreaterThan(0)
      expect(run.refused[1]).toBeGreaterThan(0)
      expect(run.accepted[0]).toBeGreaterThan(0)
      expect(run.accepted[1]).toBeGreaterThan(0)
      // The broker received exactly the accepted messages: none of the refused ones.
      await vi.waitFor(() => expect(watcher.count()).toBe(total), { timeout: 10_000 })
      expect(watcher.count()).toBe(total)
      await watcher.end()
      expect(a.stats.cluster.calls[storeOpIndex.rate_leases]).toBeGreaterThan(0)
      expect(b.stats.cluster.calls[storeOpIndex.rate_leases]).toBeGreaterThan(0)
    })

    it('falls back to per-instance buckets while Redis is down (logged once, counted), and leases again when it is back', async () => {
      await redis.stop()
      await vi.waitFor(() => expect(a.userBudgets!.fleetWide || b.userBudgets!.fleetWide).toBe(false), { timeout: 10_000 })
      expect(a.stats.cluster.rateLeaseFallbacks).toBe(1)
      expect(b.stats.cluster.rateLeaseFallbacks).toBe(1)

      const topic = uid('local/rate')
      const watcher = await brokerWatch(broker.port, topic)
      const run = await flatOut([await session(a), await session(b)], topic)
      // Each instance's own bucket lets about the full rate through: together about twice the rate.
      for (const accepted of run.accepted) {
        expect(accepted).toBeGreaterThanOrEqual(Math.floor(RATE * run.seconds * 0.7))
        expect(accepted).toBeLessThanOrEqual(Math.ceil(RATE * run.seconds * 1.1) + 5)
      }
      const total = run.accepted[0]! + run.accepted[1]!
      await vi.waitFor(() => expect(watcher.count()).toBe(total), { timeout: 10_000 })
      await watcher.end()
      const fallbacks = logs.filter((l) => l.event === 'user_rate_leases' && l.outcome === 'local')
      expect(fallbacks.map((l) => l.moat).sort()).toEqual(['a', 'b']) // once per instance and transition

      await redis.start()
      await vi.waitFor(() => expect(a.userBudgets!.fleetWide && b.userBudgets!.fleetWide).toBe(true), { timeout: 15_000 })
      const again = uid('fleet/again')
      const watcher2 = await brokerWatch(broker.port, again)
      const back = await flatOut([await session(a), await session(b)], again)
      const total2 = back.accepted[0]! + back.accepted[1]!
      expect(total2).toBeLessThanOrEqual(Math.ceil(RATE * back.seconds * 1.25) + SLACK)
      await vi.waitFor(() => expect(watcher2.count()).toBe(total2), { timeout: 10_000 })
      await watcher2.end()
    })
  })
}
