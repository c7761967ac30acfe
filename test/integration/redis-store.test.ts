/**
 * RedisStore against a real redis-server: atomic slots across instances, slots of a killed instance
 * stop counting (no leak), buckets and windows, the ban replica (pub/sub), and the outage seen
 * through `up`. Fleet-wide behaviour through two Moat processes is in cluster-redis.test.ts.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../../src/fleet/redis-store.js'
import type { RedisConfig } from '../../src/config/types.js'
import { uid } from '../helpers/clients.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const logger = pino({ level: process.env.MOAT_TEST_LOG ?? 'silent' })
let redis: RedisServer
const stores: RedisStore[] = []

function config(prefix: string): RedisConfig {
  return {
    mode: 'url', url: redis.url, sentinel: null, nodes: [], tls: false, passwordFile: null,
    prefix, commandTimeoutMs: 500, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' },
  }
}

async function store(prefix: string): Promise<RedisStore> {
  const s = new RedisStore(config(prefix), logger)
  stores.push(s)
  s.start()
  expect(await s.whenUp(5000)).toBe(true)
  return s
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const s of stores) await s.close()
  await redis?.stop()
})

describe('RedisStore', () => {
  it('shares slots atomically between instances: 20 concurrent acquires of max 5 give exactly 5', async () => {
    const prefix = uid('slots')
    const [a, b] = [await store(prefix), await store(prefix)]
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).acquire('u:alice', 5)))
    expect(results.filter(Boolean)).toHaveLength(5)
    expect(await a.acquire('u:alice', 5)).toBe(false)
    const holder = results.findIndex(Boolean) % 2 === 0 ? a : b
    holder.release('u:alice')
    await expect.poll(() => b.acquire('u:alice', 5), { timeout: 5000 }).toBe(true)
  })

  it('slots of an instance killed with SIGKILL stop counting within seconds (nothing leaks)', async () => {
    const prefix = uid('dead')
    const live = await store(prefix)
    // A separate process takes 2 of 2 slots, then is killed without any cleanup.
    const script = `
      import { RedisStore } from './dist/fleet/redis-store.js'
      import { pino } from 'pino'
      const s = new RedisStore(${JSON.stringify(config(prefix))}, pino({ level: 'silent' }))
      s.start()
      await s.whenUp(5000)
      console.log(await s.acquire('u:bob', 2), await s.acquire('u:bob', 2))
      setInterval(() => {}, 1000)`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root })
    const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())))
    expect(line.trim()).toBe('true true')
    expect(await live.acquire('u:bob', 2)).toBe(false)
    const gone = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await gone
    await expect.poll(() => live.acquire('u:bob', 2), { timeout: 10_000, interval: 250 }).toBe(true)
  })

  it('token buckets and windows are shared', async () => {
    const prefix = uid('rate')
    const [a, b] = [await store(prefix), await store(prefix)]
    // 3 per minute: the 4th take, on either instance, is refused.
    const takes = [await a.take('ar:10.0.0.1', 3, 3 / 60_000), await b.take('ar:10.0.0.1', 3, 3 / 60_000), await a.take('ar:10.0.0.1', 3, 3 / 60_000), await b.take('ar:10.0.0.1', 3, 3 / 60_000)]
    expect(takes).toEqual([true, true, true, false])
    expect([await a.count('lf:u:x', 60_000), await b.count('lf:u:x', 60_000), await a.count('lf:u:x', 60_000)]).toEqual([1, 2, 3])
  })

  it('replicates bans to every instance (pub/sub), with a change notification, and removes them', async () => {
    const prefix = uid('bans')
    const [a, b] = [await store(prefix), await store(prefix)]
    let notified = 0
    b.onBans(() => { notified++ })
    await a.addBan({ kind: 'username', value: 'mallory', until: Date.now() + 60_000, reason: 'r', createdAt: Date.now(), source: 'admin' })
    expect(a.bans().map((x) => x.value)).toEqual(['mallory'])
    await expect.poll(() => b.bans().map((x) => x.value), { timeout: 2000 }).toEqual(['mallory'])
    expect(notified).toBeGreaterThanOrEqual(1)
    expect(await b.removeBan('username', 'mallory')).toBe(true)
    expect(await b.removeBan('username', 'mallory')).toBe(false)
    await expect.poll(() => a.bans().length, { timeout: 2000 }).toBe(0)
  })

  it('reports an outage through `up` and fails calls fast, then recovers', async () => {
    const s = await store(uid('outage'))
    await redis.stop()
    await expect.poll(() => s.up, { timeout: 5000 }).toBe(false)
    await expect(s.acquire('u:x', 1)).rejects.toThrow()
    await redis.start()
    await expect.poll(() => s.up, { timeout: 10_000 }).toBe(true)
    expect(await s.acquire('u:x', 1)).toBe(true)
  })
})
