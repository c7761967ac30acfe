/**
 * Sessions admitted on local limits while Redis is down (`onRedisDown.connections: local`) are
 * counted in Redis once it is back: two Moat processes, a real redis-server stopped (SIGKILL) and
 * started again empty, raw MQTT clients. A user over `perUsername` fleet-wide after the outage gets
 * no new session (CONNACK quota exceeded, nothing reaches the broker) until enough of its sessions
 * end, and no open session is closed to get there.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetBench, type Attempt } from '../helpers/fleet-bench.js'
import { uid } from '../helpers/clients.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let redis: RedisServer
let fleet: FleetBench
const prefix = uid('outage')

beforeAll(async () => {
  redis = await startRedis()
  fleet = await FleetBench.start({ redis: { url: redis.url, prefix, commandTimeout: '300ms' }, connections: { perUsername: 2 } })
}, 120_000)

afterAll(async () => {
  await fleet?.stop()
  await redis?.stop()
})

describe('sessions admitted during a Redis outage', { timeout: 120_000 }, () => {
  it('are written to Redis when it is back: the user is over the limit, refused new CONNECTs, and every open session stays', async () => {
    const [a, b] = fleet.moats as [typeof fleet.moats[0], typeof fleet.moats[0]]
    const { code } = fleet
    await redis.stop()
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 10_000 }).toEqual([0, 0])

    // Each instance admits alice up to its own perUsername (2): 4 sessions, twice the fleet-wide limit.
    const during: Attempt[] = []
    for (const moat of [a, a, b, b]) {
      const attempt = await fleet.connect(moat, 'alice')
      expect(attempt.code).toBe(code.ok)
      during.push(attempt)
    }
    expect(await fleet.metrics('moat_cluster_local_fallbacks_total')).toEqual([2, 2])
    // The local limit, in front, still holds on each instance.
    expect((await fleet.connect(a, 'alice')).code).toBe(code.quota)

    await redis.start() // empty: no persistence
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 15_000 }).toEqual([1, 1])
    // Both instances wrote the sessions they admitted during the outage (before reporting up).
    const reader = new Redis(redis.url)
    try {
      const held = await reader.hgetall(`{${prefix}}:s:u:alice`)
      expect(Object.values(held).map(Number)).toEqual([2, 2])
    } finally {
      reader.disconnect()
    }

    // alice holds 4 of 2 fleet-wide: refused on both instances, the broker hears nothing.
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'alice')).code).toBe(code.quota)
    // Another user is not affected.
    expect((await fleet.connect(b, 'bob')).code).toBe(code.ok)
    // No open session was closed to bring alice back under the limit: each still relays.
    for (const [i, attempt] of during.entries()) {
      expect(fleet.untouched(attempt)).toBe(true)
      await fleet.relays(attempt, `still-open-${i}`)
    }

    // Two of alice's sessions end (one per instance): 2 of 2, still no room.
    during[0]!.client.destroy()
    during[2]!.client.destroy()
    await expect.poll(async () => (await fleet.metrics('moat_sessions_open')).reduce((x, y) => x + y, 0), { timeout: 10_000 }).toBe(3)
    expect((await fleet.connect(b, 'alice')).code).toBe(code.quota)
    // A third ends: 1 of 2, and a new session is admitted again.
    during[1]!.client.destroy()
    await expect.poll(async () => {
      const attempt = await fleet.connect(a, 'alice')
      if (attempt.code !== code.ok) return attempt.code
      await fleet.relays(attempt, 'after')
      return attempt.code
    }, { timeout: 10_000, interval: 200 }).toBe(code.ok)
    expect(fleet.untouched(during[3]!)).toBe(true)
  })
})
