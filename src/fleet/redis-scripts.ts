/**
 * The Lua scripts of the Redis store (redis-store.ts), one atomic decision each, registered on the
 * client with `defineCommand` (EVALSHA, EVAL when the script is not cached: a restarted or
 * promoted Redis loads it again on first use). Their keys share the `{prefix}` hash tag, so in
 * Redis Cluster a script's keys are always on one node.
 */
import type { Cluster, Redis } from 'ioredis'
import { defineBanRestore, type BanRestoreClient } from './ban-restore.js'

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local seen = redis.call('ZSCORE', KEYS[2], fields[i])
  if seen and tonumber(seen) >= now - tonumber(ARGV[3]) then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`

const RELEASE = `
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return n`

const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = capacity
if b[1] then
  tokens = math.min(capacity, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * refill)
end
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / refill) + 1000)
return ok`

const COUNT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`

const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now`

interface Scripts {
  moatAcquire(slots: string, instances: string, id: string, max: number, ttl: number, expire: number): Promise<number>
  moatRelease(slots: string, id: string): Promise<number>
  moatTake(bucket: string, capacity: number, refill: number): Promise<number>
  moatCount(window: string, windowMs: number): Promise<number>
  moatHeartbeat(instances: string, id: string, keep: number): Promise<number>
}

export type Client = (Redis | Cluster) & Scripts & BanRestoreClient

export function defineScripts(client: Redis | Cluster): Client {
  client.defineCommand('moatAcquire', { numberOfKeys: 2, lua: ACQUIRE })
  client.defineCommand('moatRelease', { numberOfKeys: 1, lua: RELEASE })
  client.defineCommand('moatTake', { numberOfKeys: 1, lua: TAKE })
  client.defineCommand('moatCount', { numberOfKeys: 1, lua: COUNT })
  client.defineCommand('moatHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT })
  defineBanRestore(client)
  return client as Client
}
