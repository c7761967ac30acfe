/**
 * Bans a Redis lost, written back by the instances that had seen them. Redis replicates
 * asynchronously: a failover (Sentinel or Cluster) may promote a replica that missed the last ban
 * added or removed, and a Redis restarted without persistence has none. Each instance's replica
 * knows the ban version it last read; when it reconnects to a store whose version is lower, its
 * replica is newer than the store, and one script (atomic: instances reconnecting together cannot
 * interleave) makes the store agree with it:
 * - a ban of the replica the store lacks is added (or replaces the store's, unless the store's was
 *   made after the replica last read the list: that one is newer);
 * - a ban of the store the replica lacks, made before the replica last read the list, is removed:
 *   the replica saw the version that removed it (an operator's `moat ban remove` lost by the
 *   failover stays removed); one made later is kept (a ban added on the new primary meanwhile);
 * - the version becomes the replica's, and the change is announced.
 * The instance with the newest replica wins: once the store's version is at or past an instance's,
 * that instance writes nothing. Expired bans are not written back.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Ban } from './shared-store.js'

const RESTORE = `
local stored = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local mine = tonumber(ARGV[1])
if stored >= mine then return 0 end
local readAt = tonumber(ARGV[2])
local function createdAt(json)
  local ok, ban = pcall(cjson.decode, json)
  if ok and type(ban) == 'table' then return tonumber(ban.createdAt) end
  return nil
end
local keep = {}
for i = 3, #ARGV, 2 do
  keep[ARGV[i]] = true
  local existing = redis.call('HGET', KEYS[1], ARGV[i])
  local at = existing and createdAt(existing)
  if not existing or (at and at <= readAt) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if not keep[fields[i]] then
    local at = createdAt(fields[i + 1])
    if at and at <= readAt then redis.call('HDEL', KEYS[1], fields[i]) end
  end
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[1], 'restore')
return 1`

export interface BanRestoreClient {
  moatRestoreBans(bans: string, version: string, ...args: Array<string | number>): Promise<number>
}

export function defineBanRestore(client: Redis | Cluster): void {
  client.defineCommand('moatRestoreBans', { numberOfKeys: 2, lua: RESTORE })
}

/**
 * Writes `bans` (the replica, read at `readAt` at version `version`) back when the store's version
 * is lower; true when it did.
 */
export async function restoreBans(client: BanRestoreClient, bansKey: string, versionKey: string, version: number, readAt: number, bans: readonly Ban[]): Promise<boolean> {
  if (!Number.isFinite(version) || version <= 0) return false
  const now = Date.now()
  const args: string[] = []
  for (const ban of bans) {
    if (ban.until !== null && ban.until <= now) continue
    args.push(`${ban.kind}\u0000${ban.value}`, JSON.stringify(ban))
  }
  return (await client.moatRestoreBans(bansKey, versionKey, version, readAt, ...args)) === 1
}
