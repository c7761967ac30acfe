/**
 * `cluster.redis.sentinel` against a real Sentinel deployment: one primary, one replica, three
 * Sentinels (test/helpers/redis-sentinel.ts), two Moat processes. The primary is killed (SIGKILL)
 * and the Sentinels promote the replica; the fleet follows it and keeps its bans, connection slots
 * and lockout counts, and no open session is touched.
 *
 * Writes the replica never received are lost by a failover (Redis replicates asynchronously). To
 * make that happen on purpose, the replica's link is cut before the last writes (it is given a
 * wrong `masterauth` and its link closed: it cannot sync again), so the promoted replica lacks
 * them: the instances re-assert their slots and write back the bans their replicas saw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetBench, type Attempt } from '../helpers/fleet-bench.js'
import { uid } from '../helpers/clients.js'
import { RedisSentinels, SENTINEL_NAME } from '../helpers/redis-sentinel.js'
import type { MoatProcess } from '../helpers/moat-process.js'

let sentinels: RedisSentinels
let fleet: FleetBench
let a: MoatProcess
let b: MoatProcess
const prefix = uid('sentinel')

beforeAll(async () => {
  sentinels = await RedisSentinels.start()
  fleet = await FleetBench.start({ redis: { sentinel: { name: SENTINEL_NAME, nodes: sentinels.nodes }, prefix, commandTimeout: '300ms' }, connections: { perUsername: 2 } })
  ;[a, b] = fleet.moats as [MoatProcess, MoatProcess]
}, 120_000)

afterAll(async () => {
  await fleet?.stop()
  await sentinels?.stop()
})

async function cutReplica(): Promise<void> {
  await sentinels.command(sentinels.replica.port, ['CONFIG', 'SET', 'masterauth', 'not-the-password'])
  await sentinels.command(sentinels.replica.port, ['CLIENT', 'KILL', 'TYPE', 'master'])
  await expect.poll(async () => (await sentinels.info(sentinels.replica.port, 'replication')).includes('master_link_status:down'), { timeout: 10_000 }).toBe(true)
}

describe('a Sentinel failover', { timeout: 120_000 }, () => {
  it('keeps the fleet\'s bans, slots and lockout counts, and touches no open session', async () => {
    const { code } = fleet
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 10_000 }).toEqual([1, 1])

    // Replicated before the failover: a ban, one of alice's slots, two failed logins of victim (of 3).
    await fleet.ban(a, 'user:mallory')
    await fleet.ban(a, 'user:eve')
    const first = await fleet.connect(b, 'alice')
    expect(first.code).toBe(code.ok)
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'victim', 'wrong')).code).toBe(code.badCredentials)
    await expect.poll(async () => (await sentinels.info(sentinels.replica.port, 'replication')).match(/slave_repl_offset:(\d+)/)?.[1] === (await sentinels.info(sentinels.primary.port, 'replication')).match(/master_repl_offset:(\d+)/)?.[1], { timeout: 10_000 }).toBe(true)

    // Lost by the failover: alice's second slot, a new ban (trudy) and the removal of eve's.
    await cutReplica()
    const second = await fleet.connect(a, 'alice')
    expect(second.code).toBe(code.ok)
    await fleet.ban(b, 'user:trudy')
    await fleet.ban(b, 'user:eve', 'DELETE')
    // Both instances' replicas have seen the last ban change (the version check runs every second).
    for (const moat of [a, b]) await expect.poll(() => fleet.bans(moat), { timeout: 10_000 }).toEqual(['user:mallory', 'user:trudy'])

    await sentinels.killPrimary()
    await sentinels.failedOver()
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 20_000 }).toEqual([1, 1])
    expect((await fleet.metrics('moat_cluster_store_transitions_total{to="down"}')).every((n) => n >= 1)).toBe(true)
    expect(await sentinels.primaryPort()).toBe(sentinels.replica.port)

    // Slots: alice holds 2 of 2 on the new primary (the lost one re-asserted): refused on both instances.
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'alice')).code).toBe(code.quota)
    // Bans: mallory's kept, trudy's written back, eve's removal not undone; the broker hears of none of them.
    for (const moat of [a, b]) {
      expect((await fleet.connect(moat, 'mallory')).code).toBe(code.banned)
      expect((await fleet.connect(moat, 'trudy')).code).toBe(code.banned)
    }
    // The promoted replica had the older list: an instance wrote its replica's back.
    expect([a, b].some((m) => m.logs.some((l) => l.event === 'bans_restored'))).toBe(true)
    const eve = await fleet.connect(b, 'eve')
    expect(eve.code).toBe(code.ok)
    const stored = await sentinels.command(sentinels.replica.port, ['HKEYS', `{${prefix}}:bans`]) as string[]
    expect(stored.map((f) => f.replace('\u0000', ':')).sort()).toEqual(['username:mallory', 'username:trudy'])
    for (const moat of [a, b]) expect(await fleet.bans(moat)).toEqual(['user:mallory', 'user:trudy'])
    // Lockout: the count of 2 survived; a third failed login bans victim fleet-wide.
    expect((await fleet.connect(a, 'victim', 'wrong')).code).toBe(code.badCredentials)
    await expect.poll(async () => (await fleet.connect(b, 'victim')).code, { timeout: 10_000, interval: 200 }).toBe(code.banned)

    // The sessions opened before the failover were not touched and still relay.
    for (const [i, attempt] of ([first, second, eve] as Attempt[]).entries()) {
      expect(fleet.untouched(attempt)).toBe(true)
      await fleet.relays(attempt, `after-failover-${i}`)
    }
  })
})
