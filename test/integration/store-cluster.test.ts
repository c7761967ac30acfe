/**
 * `cluster.redis.cluster` against a real Redis Cluster: three primaries, three replicas
 * (test/helpers/redis-cluster.ts), two Moat processes. Every key Moat writes is under the
 * `{prefix}` hash tag, so all of them are in one slot on the node serving it (checked with CLUSTER
 * KEYSLOT / COUNTKEYSINSLOT); the Lua scripts and MULTI run there; both instances are subscribed
 * to the ban channel; and when the primary serving that slot is killed (SIGKILL), its replica takes
 * over and the fleet goes on: limits enforced, bans kept, open sessions untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FleetBench, type Attempt } from '../helpers/fleet-bench.js'
import { uid } from '../helpers/clients.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { RedisCluster } from '../helpers/redis-cluster.js'
import type { MoatProcess } from '../helpers/moat-process.js'

let cluster: RedisCluster
let certs: TestCerts
let fleet: FleetBench
let a: MoatProcess
let b: MoatProcess
const prefix = uid('rcluster')

beforeAll(async () => {
  cluster = await RedisCluster.start()
  certs = makeTestCerts([])
  fleet = await FleetBench.start({
    redis: { cluster: { nodes: cluster.addresses }, prefix, commandTimeout: '300ms' },
    connections: { perUsername: 2, perAddressRate: '1000/s' },
    extra: {
      listeners: [
        { name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        // A TLS listener: its session-ticket seed is shared through the store ({prefix}:tls:mqtts).
        { name: 'mqtts', protocol: 'mqtts', host: '127.0.0.1', port: 0, tls: { cert: certs.server.cert, key: certs.server.key } },
      ],
    },
  })
  ;[a, b] = fleet.moats as [MoatProcess, MoatProcess]
}, 120_000)

afterAll(async () => {
  await fleet?.stop()
  await cluster?.stop()
  certs?.cleanup()
})

/** The primaries now: every node that serves a slot range. */
async function primaries(): Promise<number[]> {
  const live = cluster.nodes.find((n) => n.server.running)!.port
  const ranges = await cluster.command(live, ['CLUSTER', 'SLOTS']) as Array<[number, number, [string, number]]>
  return [...new Set(ranges.map((r) => Number(r[2][1])))]
}

/** Every key of this fleet is on the node serving the prefix's slot, and only there. */
async function keysInOneSlot(slot: number): Promise<string[]> {
  const owner = await cluster.ownerOf(slot)
  const keys = (await cluster.command(owner, ['KEYS', `{${prefix}}:*`]) as string[]).sort()
  for (const key of keys) expect(await cluster.keyslot(key)).toBe(slot)
  expect(Number(await cluster.command(owner, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)]))).toBe(keys.length)
  for (const port of await primaries()) {
    if (port !== owner) expect(await cluster.command(port, ['KEYS', `*${prefix}*`])).toEqual([])
  }
  return keys
}

/** Subscriptions to the ban channel across the cluster (PUBSUB NUMSUB counts a node's own). */
async function banSubscribers(): Promise<number> {
  let n = 0
  for (const node of cluster.nodes.filter((x) => x.server.running)) {
    const reply = await cluster.command(node.port, ['PUBSUB', 'NUMSUB', `{${prefix}}:bans`]) as [string, number]
    n += Number(reply[1])
  }
  return n
}

describe('a Redis Cluster', { timeout: 120_000 }, () => {
  const open: Attempt[] = []
  let slot = 0

  it('holds every key Moat writes in the slot of its hash tag; scripts, MULTI and the ban channel work', async () => {
    const { code } = fleet
    slot = await cluster.keyslot(`{${prefix}}:anything`)
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 10_000 }).toEqual([1, 1])
    // Scripts: alice's slots counted across both instances (acquire), the rate bucket (take).
    for (const moat of [a, b]) {
      const attempt = await fleet.connect(moat, 'alice')
      expect(attempt.code).toBe(code.ok)
      open.push(attempt)
    }
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'alice')).code).toBe(code.quota)
    // A failed-login window (count) and a ban (MULTI + PUBLISH), seen by the other instance.
    expect((await fleet.connect(a, 'victim', 'wrong')).code).toBe(code.badCredentials)
    await fleet.ban(a, 'user:mallory')
    await expect.poll(() => fleet.bans(b), { timeout: 10_000 }).toEqual(['user:mallory'])
    expect((await fleet.connect(b, 'mallory')).code).toBe(code.banned)
    // Both instances subscribe to the ban channel (ioredis Cluster's duplicate() as the subscriber).
    await expect.poll(banSubscribers, { timeout: 10_000 }).toBe(2)

    const p = `{${prefix}}:`
    await expect.poll(() => keysInOneSlot(slot), { timeout: 10_000 }).toEqual(expect.arrayContaining([
      `${p}admin`, `${p}b:ar:127.0.0.1`, `${p}bans`, `${p}bans:v`, `${p}instances`, `${p}s:u:alice`, `${p}tls:mqtts`, `${p}w:lf:u:victim`,
    ]))
  })

  it('survives the failover of the primary serving that slot: limits enforced, bans kept, open sessions untouched', async () => {
    const { code } = fleet
    const { killed, promoted } = await cluster.killOwnerOf(slot)
    expect(promoted).not.toBe(killed)
    await expect.poll(() => fleet.metrics('moat_cluster_store_up'), { timeout: 20_000 }).toEqual([1, 1])

    // alice still holds 2 of 2: refused on both instances (the scripts run on the promoted node).
    await expect.poll(async () => (await fleet.connect(a, 'alice')).code, { timeout: 10_000, interval: 200 }).toBe(code.quota)
    expect((await fleet.connect(b, 'alice')).code).toBe(code.quota)
    // The ban is still there, on both instances and in the store.
    for (const moat of [a, b]) expect((await fleet.connect(moat, 'mallory')).code).toBe(code.banned)
    // A ban made after the failover reaches the other instance and closes its open session there.
    const trudy = await fleet.connect(a, 'trudy')
    expect(trudy.code).toBe(code.ok)
    await fleet.ban(b, 'user:trudy')
    await trudy.client.closed
    expect((await fleet.connect(a, 'trudy')).code).toBe(code.banned)
    // The subscribers are back on the cluster, and every key is still in the one slot, now on the promoted node.
    await expect.poll(banSubscribers, { timeout: 10_000 }).toBe(2)
    expect(await cluster.ownerOf(slot)).toBe(promoted)
    expect(await keysInOneSlot(slot)).toEqual(expect.arrayContaining([`{${prefix}}:bans`, `{${prefix}}:s:u:alice`]))

    for (const [i, attempt] of open.entries()) {
      expect(fleet.untouched(attempt)).toBe(true)
      await fleet.relays(attempt, `after-cluster-failover-${i}`)
    }
  })
})
