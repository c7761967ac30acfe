/**
 * `onRedisDown: { connections: local }` (the default): while Redis is down each instance falls back
 * to its own limits (a user gets at most perUsername per instance), counted and logged; open
 * sessions are untouched; when Redis is back the fleet-wide count applies again. Two Moat
 * instances in this process (the cross-process behaviour is in cluster-redis.test.ts).
 */
import { pino } from 'pino'
import type { IConnackPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../../src/fleet/redis-store.js'
import { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { limitsFrom, passwordAuth, testAuth, testConfig } from '../helpers/moat.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let broker: TestBroker
let redis: RedisServer
let a: Moat
let b: Moat
const clients: RawClient[] = []

async function connectAs(moat: Moat, username: string): Promise<number | undefined> {
  const raw = new RawClient(moat.address().port, 4)
  clients.push(raw)
  await raw.connected()
  const id = uid(username)
  raw.send(connectPacket(id, 4, { username, password: Buffer.from('pw') }))
  const connack = await raw.nextPacket() as IConnackPacket | null
  if (connack?.returnCode !== 0) {
    await raw.closed
    expect(broker.received(id)).toEqual([])
  }
  return connack?.returnCode
}

beforeAll(async () => {
  broker = await startBroker('aedes')
  redis = await startRedis()
  const auth = testAuth(await passwordAuth(['alice']))
  const prefix = uid('fallback')
  const make = (): Moat => new Moat({
    ...testConfig(broker, { limits: limitsFrom({ connections: { perUsername: 1 } }) }),
    auth,
    cluster: { redis: { mode: 'url', url: redis.url, sentinel: null, nodes: [], tls: false, passwordFile: null, prefix, commandTimeoutMs: 300, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' } } },
  }, { logger: pino({ level: process.env.MOAT_TEST_LOG ?? 'silent' }) })
  a = make()
  b = make()
  await Promise.all([a.start(), b.start()])
})

afterAll(async () => {
  for (const c of clients) c.destroy()
  await Promise.all([a?.shutdown(0), b?.shutdown(0)])
  await redis?.stop()
  await broker?.stop()
})

describe('onRedisDown.connections: local', () => {
  it('builds a RedisStore from cluster.redis', () => {
    expect(a.store).toBeInstanceOf(RedisStore)
    expect(a.store.up).toBe(true)
  })

  it('falls back to per-instance limits while Redis is down, and to the fleet-wide limit when it is back', async () => {
    expect(await connectAs(a, 'alice')).toBe(0)
    expect(await connectAs(b, 'alice')).toBe(3) // fleet-wide: alice already holds 1 of 1

    await redis.stop()
    await expect.poll(() => b.store.up, { timeout: 5000 }).toBe(false)
    // B's own count for alice is 0: admitted on local limits, counted as a fallback.
    expect(await connectAs(b, 'alice')).toBe(0)
    const fallback = clients[clients.length - 1]!
    expect(b.stats.cluster.localFallbacks).toBe(1)
    // A's own count for alice is 1: the local limit (in front) still refuses.
    expect(await connectAs(a, 'alice')).toBe(3)

    await redis.start()
    await expect.poll(() => a.store.up && b.store.up, { timeout: 10_000 }).toBe(true)
    // B's fallback session ends: B holds nothing for alice, locally or in Redis.
    fallback.destroy()
    await expect.poll(() => b.sessionCount, { timeout: 5000 }).toBe(0)
    // A re-asserted alice's slot into the empty Redis: the fleet-wide limit holds again on B.
    expect(await connectAs(b, 'alice')).toBe(3)
    expect(a.stats.cluster.transitions[0]).toBeGreaterThanOrEqual(1)
    expect(a.stats.cluster.transitions[1]).toBeGreaterThanOrEqual(2)
  })
})
