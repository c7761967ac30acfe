/**
 * The ban write-back of src/fleet/ban-restore.ts against a real redis-server: what an instance
 * whose replica is newer than the store writes back (lost bans, lost removals), what it leaves
 * (bans made on the store after the replica last read it), and that an instance with an older
 * replica writes nothing. The failover that causes it is in store-sentinel.test.ts.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineBanRestore, restoreBans, type BanRestoreClient } from '../../src/fleet/ban-restore.js'
import type { Ban } from '../../src/fleet/shared-store.js'
import { uid } from '../helpers/clients.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let redis: RedisServer
let client: Redis & BanRestoreClient
let subscriber: Redis

beforeAll(async () => {
  redis = await startRedis()
  client = new Redis(redis.url) as Redis & BanRestoreClient
  defineBanRestore(client)
  subscriber = new Redis(redis.url)
})

afterAll(async () => {
  client?.disconnect()
  subscriber?.disconnect()
  await redis?.stop()
})

const ban = (value: string, createdAt: number, until: number | null = null): Ban => ({ kind: 'username', value, until, reason: 'test', createdAt, source: 'admin' })
const field = (b: Ban): string => `${b.kind}\u0000${b.value}`

async function stored(key: string): Promise<string[]> {
  return (await client.hkeys(key)).map((f) => f.split('\u0000')[1]!).sort()
}

describe('restoreBans', () => {
  it('a replica newer than the store: lost bans written back, lost removals applied, newer store bans kept, announced', async () => {
    const p = `{${uid('restore')}}:`
    const readAt = Date.now()
    // The store (version 4) kept: kept (in both), removed (its removal was lost), fresh (made after the replica read).
    const kept = ban('kept', readAt - 5000)
    const removed = ban('removed', readAt - 4000)
    const fresh = ban('fresh', readAt + 1000)
    await client.hset(`${p}bans`, field(kept), JSON.stringify(kept), field(removed), JSON.stringify(removed), field(fresh), JSON.stringify(fresh))
    await client.set(`${p}bans:v`, '4')
    const messages: string[] = []
    await subscriber.subscribe(`${p}bans`)
    subscriber.on('message', (_channel: string, message: string) => messages.push(message))

    // The replica read version 6: kept, and lost (a ban the store lost); an expired one is not written back.
    const lost = ban('lost', readAt - 1000)
    const expired = ban('expired', readAt - 9000, Date.now() - 1)
    expect(await restoreBans(client, `${p}bans`, `${p}bans:v`, 6, readAt, [kept, lost, expired])).toBe(true)
    expect(await stored(`${p}bans`)).toEqual(['fresh', 'kept', 'lost'])
    expect(JSON.parse((await client.hget(`${p}bans`, field(lost)))!)).toEqual(lost)
    expect(await client.get(`${p}bans:v`)).toBe('6')
    await expect.poll(() => messages, { timeout: 5000 }).toEqual(['restore'])

    // Another instance whose replica read version 5 (older than the store now): writes nothing.
    expect(await restoreBans(client, `${p}bans`, `${p}bans:v`, 5, readAt, [removed])).toBe(false)
    expect(await stored(`${p}bans`)).toEqual(['fresh', 'kept', 'lost'])
    expect(await client.get(`${p}bans:v`)).toBe('6')
  })

  it('instances reconnecting in any order end with the newest replica\'s list', async () => {
    const p = `{${uid('order')}}:`
    const readAt = Date.now()
    const a = ban('a', readAt - 3000)
    const b = ban('b', readAt - 2000)
    // A Redis restarted empty. The older replica (version 2: a) writes first, then the newer (version 3: b, a removed).
    expect(await restoreBans(client, `${p}bans`, `${p}bans:v`, 2, readAt, [a])).toBe(true)
    expect(await stored(`${p}bans`)).toEqual(['a'])
    expect(await restoreBans(client, `${p}bans`, `${p}bans:v`, 3, readAt, [b])).toBe(true)
    expect(await stored(`${p}bans`)).toEqual(['b'])
    expect(await client.get(`${p}bans:v`)).toBe('3')
  })

  it('an instance that never read a ban version writes nothing', async () => {
    const p = `{${uid('never')}}:`
    expect(await restoreBans(client, `${p}bans`, `${p}bans:v`, 0, Date.now(), [ban('x', Date.now())])).toBe(false)
    expect(await client.exists(`${p}bans`, `${p}bans:v`)).toBe(0)
  })
})
