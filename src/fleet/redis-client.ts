/**
 * The ioredis client of a fleet's shared store, for each `cluster.redis` mode (url, sentinel,
 * cluster): no offline queue and a command timeout, so a command fails at once while Redis is away.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Cluster, Redis, RedisOptions } from 'ioredis'
import type { RedisConfig } from '../config/types.js'
import { MoatError } from '../errors.js'

/**
 * ioredis is loaded on first use, not at import: every `moat` command imports this module (through
 * moat.ts), and only a config with `cluster.redis` needs the client (its import costs startup time).
 */
const require = createRequire(import.meta.url)
function ioredis(): typeof import('ioredis') {
  return require('ioredis') as typeof import('ioredis')
}

/** Where Redis is, for logs: never the password. */
export function describeRedis(config: RedisConfig): string {
  if (config.mode === 'url') {
    const u = new URL(config.url!)
    return `${u.protocol}//${u.hostname}:${u.port || 6379}${u.pathname === '/' ? '' : u.pathname}`
  }
  const nodes = (config.mode === 'sentinel' ? config.sentinel!.nodes : config.nodes).map((n) => `${n.host}:${n.port}`).join(',')
  return config.mode === 'sentinel' ? `sentinel ${config.sentinel!.name}@${nodes}` : `cluster ${nodes}`
}

function readPassword(file: string | null): string | undefined {
  if (file === null) return undefined
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new MoatError('MOAT_ERR_CLUSTER', `cluster.redis.passwordFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Builds the ioredis client for the configured mode (not connected yet: `lazyConnect`). */
export function createRedisClient(config: RedisConfig): Redis | Cluster {
  const password = readPassword(config.passwordFile)
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: config.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    connectTimeout: Math.max(1000, config.commandTimeoutMs * 4),
    retryStrategy: (times: number) => Math.min(100 * times, 1000),
  }
  if (password !== undefined) common.password = password
  const { Redis, Cluster } = ioredis()
  if (config.mode === 'url') return new Redis(config.url!, common)
  const tls = config.tls ? {} : undefined
  if (config.mode === 'sentinel') {
    return new Redis({
      ...common,
      // A promotion seen at once (+switch-master from the Sentinels), not only when the old
      // primary's connection drops; a write refused by a demoted primary reconnects to the new one.
      failoverDetector: true,
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
      sentinels: config.sentinel!.nodes.map((n) => ({ host: n.host, port: n.port })),
      name: config.sentinel!.name,
      ...(tls === undefined ? {} : { tls, enableTLSForSentinelMode: true }),
      ...(password === undefined ? {} : { sentinelPassword: password }),
    })
  }
  const { lazyConnect, enableOfflineQueue, retryStrategy: _r, ...redisOptions } = common
  return new Cluster(config.nodes.map((n) => ({ host: n.host, port: n.port })), {
    lazyConnect,
    enableOfflineQueue,
    clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000),
    redisOptions: { ...redisOptions, ...(tls === undefined ? {} : { tls }) },
  })
}
