/**
 * The options each mode's client is built with, and that no description of Redis carries the
 * password. The modes run against real servers in the integration suite: url mode
 * (cluster-redis.test.ts), Sentinel (store-sentinel.test.ts) and Redis Cluster (store-cluster.test.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { createRedisClient, describeRedis } from '../../../src/fleet/redis-client.js'
import type { RedisConfig } from '../../../src/config/types.js'
import { MoatError } from '../../../src/errors.js'

const base: RedisConfig = {
  mode: 'url', url: 'redis://127.0.0.1:6379', sentinel: null, nodes: [], tls: false, passwordFile: null,
  prefix: 'moat', commandTimeoutMs: 500, onRedisDown: { connections: 'local', bans: 'local', lockout: 'local' },
}

describe('createRedisClient', () => {
  it('url mode: a Redis client, TLS for rediss://, password from the URL, never queueing while offline', () => {
    const client = createRedisClient({ ...base, url: 'rediss://:s3cret@redis.example:6380/1' }) as Redis
    expect(client).toBeInstanceOf(Redis)
    expect(client.status).toBe('wait') // lazyConnect: nothing dialled yet
    expect(client.options).toMatchObject({ host: 'redis.example', port: 6380, db: 1, password: 's3cret', enableOfflineQueue: false, commandTimeout: 500 })
    expect(client.options.tls).toBeDefined()
    expect(describeRedis({ ...base, url: 'rediss://:s3cret@redis.example:6380/1' })).toBe('rediss://redis.example:6380/1')
    client.disconnect()
  })

  it('passwordFile: read when the client is built; an unreadable one is a clear error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-redis-pw-'))
    writeFileSync(join(dir, 'pw'), 'from-file\n')
    const client = createRedisClient({ ...base, passwordFile: join(dir, 'pw') }) as Redis
    expect(client.options.password).toBe('from-file')
    client.disconnect()
    expect(() => createRedisClient({ ...base, passwordFile: join(dir, 'missing') })).toThrow(MoatError)
    expect(() => createRedisClient({ ...base, passwordFile: join(dir, 'missing') })).toThrow(/cluster\.redis\.passwordFile: cannot read .*missing: ENOENT/)
  })

  it('sentinel mode: the sentinels, the master name, TLS to the nodes when asked', () => {
    const config: RedisConfig = { ...base, mode: 'sentinel', url: null, sentinel: { name: 'mymaster', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }] }, tls: true }
    const client = createRedisClient(config) as Redis
    expect(client).toBeInstanceOf(Redis)
    expect(client.options).toMatchObject({ name: 'mymaster', sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }], enableTLSForSentinelMode: true, enableOfflineQueue: false, failoverDetector: true })
    // A write refused by a demoted primary (READONLY) makes the client reconnect to the promoted one.
    expect(client.options.reconnectOnError!(new Error('READONLY You can\'t write against a read only replica.'))).toBe(true)
    expect(client.options.reconnectOnError!(new Error('NOSCRIPT'))).toBe(false)
    expect(describeRedis(config)).toBe('sentinel mymaster@10.0.0.1:26379,10.0.0.2:26379')
    client.disconnect()
  })

  it('cluster mode: a Cluster client over the seed nodes', () => {
    const config: RedisConfig = { ...base, mode: 'cluster', url: null, nodes: [{ host: 'r1', port: 7000 }, { host: 'r2', port: 7001 }] }
    const client = createRedisClient(config) as Cluster
    expect(client).toBeInstanceOf(Cluster)
    expect(client.status).toBe('wait')
    expect(client.options).toMatchObject({ enableOfflineQueue: false, redisOptions: { commandTimeout: 500 } })
    expect(describeRedis(config)).toBe('cluster r1:7000,r2:7001')
    client.disconnect()
  })
})
