/**
 * A real Sentinel deployment on loopback: one primary, one replica and three Sentinels
 * (`redis-server --sentinel`, from the redis-server package alone: no redis-sentinel package
 * needed), quorum 2, a primary judged down after 1 s. `killPrimary()` SIGKILLs the primary; the
 * Sentinels promote the replica. `stop()` kills every process and removes the temp dir (call it in
 * afterAll; the servers are also killed when the test process exits).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './mosquitto.js'
import { pollUntil, redisCommand, RedisServer, requireRedisServer } from './redis.js'

export const SENTINEL_NAME = 'moat-primary'

export class RedisSentinels {
  private constructor(
    readonly dir: string,
    readonly primary: RedisServer,
    readonly replica: RedisServer,
    readonly sentinels: RedisServer[],
  ) {}

  /** `host:port` of each Sentinel, as `cluster.redis.sentinel.nodes` takes them. */
  get nodes(): string[] {
    return this.sentinels.map((s) => `${s.host}:${s.port}`)
  }

  static async start(): Promise<RedisSentinels> {
    const path = requireRedisServer()
    const dir = mkdtempSync(join(tmpdir(), 'moat-sentinel-'))
    const primary = new RedisServer(await freePort(), path, ['--dir', dir])
    const replica = new RedisServer(await freePort(), path, ['--dir', dir, '--replicaof', '127.0.0.1', String(primary.port)])
    const sentinels: RedisServer[] = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const conf = join(dir, `sentinel-${port}.conf`)
      // Sentinel rewrites its config file (what it learns of replicas and peers): one file each.
      writeFileSync(conf, [
        `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primary.port} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
        `sentinel failover-timeout ${SENTINEL_NAME} 5000`,
        `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
        '',
      ].join('\n'))
      sentinels.push(new RedisServer(port, path, ['--dir', dir, '--sentinel'], [conf]))
    }
    const set = new RedisSentinels(dir, primary, replica, sentinels)
    try {
      await primary.start()
      await replica.start()
      await set.until(async () => (await set.info(replica.port, 'replication')).includes('master_link_status:up'), 'the replica syncs')
      for (const s of sentinels) await s.start()
      // Each Sentinel must know the replica and its two peers (hello messages every 2 s) before a failover can be agreed.
      await set.until(async () => {
        for (const s of sentinels) {
          const replicas = await set.command(s.port, ['SENTINEL', 'REPLICAS', SENTINEL_NAME]) as unknown[]
          const peers = await set.command(s.port, ['SENTINEL', 'SENTINELS', SENTINEL_NAME]) as unknown[]
          if (replicas.length !== 1 || peers.length !== 2) return false
        }
        return true
      }, 'the Sentinels find the replica and each other')
    } catch (err) {
      await set.stop()
      throw err
    }
    return set
  }

  /** The primary's address as the Sentinels report it now. */
  async primaryPort(): Promise<number> {
    const addr = await this.command(this.sentinels[0]!.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME]) as string[]
    return Number(addr[1])
  }

  /** SIGKILL to the primary (an outage, not a shutdown); `failedOver()` waits for the promotion. */
  async killPrimary(): Promise<void> {
    await this.primary.stop()
  }

  /** Resolves once every Sentinel names the former replica as the primary and it says role master. */
  async failedOver(timeoutMs = 30_000): Promise<void> {
    await this.until(async () => {
      for (const s of this.sentinels) {
        const addr = await this.command(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME]) as string[]
        if (Number(addr[1]) !== this.replica.port) return false
      }
      return (await this.info(this.replica.port, 'replication')).includes('role:master')
    }, 'the Sentinels promote the replica', timeoutMs)
  }

  async command(port: number, args: string[]): Promise<unknown> {
    return redisCommand(port, args)
  }

  async info(port: number, section: string): Promise<string> {
    return String(await this.command(port, ['INFO', section]))
  }

  private until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    return pollUntil(check, what, timeoutMs)
  }

  /** Kills every server (Sentinels first: none promotes anything while the rest go) and removes the temp dir. */
  async stop(): Promise<void> {
    await Promise.all(this.sentinels.map((s) => s.stop()))
    await Promise.all([this.primary.stop(), this.replica.stop()])
    rmSync(this.dir, { recursive: true, force: true })
  }
}
