/**
 * `cluster.redis.sentinel` when the Sentinels are slow to answer at the moment of a failover. Each
 * Sentinel is behind a link (test/helpers/stalling-link.ts) that, once the primary is killed, holds
 * its replies to new connections: the Redis clients' lookups of the primary hang while the
 * Sentinels' `+switch-master` still reaches the clients' older subscriptions. That announcement
 * aborts the lookup in progress, and ioredis then stops reconnecting for good. Moat must start
 * each connection again: both instances are back on the promoted replica, and the fleet-wide
 * limits hold again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetBench } from '../helpers/fleet-bench.js'
import { uid } from '../helpers/clients.js'
import { RedisSentinels, SENTINEL_NAME } from '../helpers/redis-sentinel.js'
import { StallingLink } from '../helpers/stalling-link.js'
import type { MoatProcess } from '../helpers/moat-process.js'

let sentinels: RedisSentinels
let links: StallingLink[] = []
let fleet: FleetBench
let a: MoatProcess
let b: MoatProcess
const prefix = uid('distant')

beforeAll(async () => {
  sentinels = await RedisSentinels.start()
  links = await Promise.all(sentinels.sentinels.map((s) => StallingLink.start(s.port)))
  const nodes = links.map((l) => `127.0.0.1:${l.port}`)
  fleet = await FleetBench.start({ redis: { sentinel: { name: SENTINEL_NAME, nodes }, prefix, commandTimeout: '300ms' }, connections: { perUsername: 2 } })
  ;[a, b] = fleet.moats as [MoatProcess, MoatProcess]
}, 120_000)

afterAll(async () => {
  await fleet?.stop()
  for (const l of links) await l.stop()
  await sentinels?.stop()
})

describe('a Sentinel failover announced while the client asks the Sentinels for the primary', { timeout: 120_000 }, () => {
  it('reconnects every instance to the promoted replica, and fleet-wide limits hold again', async () => {
    const { code } = fleet
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 30_000 }).toEqual([1, 1])

    for (const link of links) link.stall()
    await sentinels.killPrimary()
    await sentinels.failedOver()
    // The promotion reached the clients' subscriptions; their lookups are still unanswered.
    await expect.poll(() => links.every((l) => l.passed('+switch-master')), { timeout: 10_000 }).toBe(true)
    for (const link of links) link.resume()
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 30_000, interval: 500 }).toEqual([1, 1])
    // Every connection (two per instance) was in a lookup when the promotion was announced: each gave up, and Moat started it again.
    await expect.poll(() => [a, b].map((m) => m.logs.filter((l) => l.event === 'cluster_store_reconnect').length), { timeout: 5_000 }).toEqual([2, 2])
    expect(await sentinels.primaryPort()).toBe(sentinels.replica.port)

    // Slots are counted fleet-wide again: alice's two sessions, one per instance, fill her quota on both.
    // (An instance counting on local limits alone would admit a second alice of its own.)
    expect((await fleet.connect(a, 'alice')).code).toBe(code.ok)
    expect((await fleet.connect(b, 'alice')).code).toBe(code.ok)
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'alice')).code).toBe(code.quota)
    expect(await fleet.metrics('moat_cluster_local_fallbacks_total')).toEqual([0, 0])

    // A ban made on one instance after the failover reaches the other through the new primary.
    await fleet.ban(a, 'user:mallory')
    await expect.poll(() => fleet.bans(b), { timeout: 10_000 }).toEqual(['user:mallory'])
    expect((await fleet.connect(b, 'mallory')).code).toBe(code.banned)
  })
})
