/**
 * A real Redis Cluster on loopback: three primaries and three replicas (`redis-server` with
 * `cluster-enabled yes`, joined by `redis-cli --cluster create --cluster-replicas 1`), a node judged
 * failed after 1.5 s so that a killed primary's replica takes over within seconds. `stop()` kills
 * every node and removes the temp dir (call it in afterAll; the nodes are also killed when the test
 * process exits).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pollUntil, redisCommand, RedisServer, requireRedisServer } from './redis.js'

const NODE_TIMEOUT_MS = 1500

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port whose cluster bus port (port + 10000) is free too: below the ephemeral range, picked at random. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await bindable(port) && await bindable(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

export interface ClusterNode {
  readonly port: number
  readonly server: RedisServer
}

export class RedisCluster {
  private constructor(readonly dir: string, readonly nodes: ClusterNode[]) {}

  /** `host:port` of every node, as `cluster.redis.cluster.nodes` takes them. */
  get addresses(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`)
  }

  static async start(): Promise<RedisCluster> {
    const path = requireRedisServer()
    const dir = mkdtempSync(join(tmpdir(), 'moat-rcluster-'))
    const taken = new Set<number>()
    const nodes: ClusterNode[] = []
    for (let i = 0; i < 6; i++) {
      const port = await clusterPort(taken)
      const server = new RedisServer(port, path, ['--dir', dir, '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(NODE_TIMEOUT_MS)])
      nodes.push({ port, server })
    }
    const cluster = new RedisCluster(dir, nodes)
    try {
      await Promise.all(nodes.map((n) => n.server.start()))
      await createCluster(cluster.addresses)
      await cluster.until(async () => {
        for (const n of nodes) if (!(await cluster.info(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false
        // Three primaries, each with a replica (a failover needs one).
        const flags = (await cluster.info(nodes[0]!.port, 'CLUSTER', 'NODES')).split('\n').filter((l) => l !== '').map((l) => l.split(' ')[2]!.split(','))
        return flags.filter((f) => f.includes('master')).length === 3 && flags.filter((f) => f.includes('slave')).length === 3
      }, 'the cluster is ok with 3 primaries and 3 replicas')
      for (const n of nodes) {
        if ((await cluster.info(n.port, 'INFO', 'replication')).includes('role:slave')) {
          await cluster.until(async () => (await cluster.info(n.port, 'INFO', 'replication')).includes('master_link_status:up'), `replica ${n.port} syncs`)
        }
      }
    } catch (err) {
      await cluster.stop()
      throw err
    }
    return cluster
  }

  /** The node serving `slot` now, as node `askPort` sees the cluster (CLUSTER SHARDS is 7.0+; CLUSTER SLOTS works everywhere). */
  async ownerOf(slot: number, askPort?: number): Promise<number> {
    const port = askPort ?? this.nodes.find((n) => n.server.running)!.port
    const ranges = await this.command(port, ['CLUSTER', 'SLOTS']) as Array<[number, number, [string, number, string]]>
    const range = ranges.find(([from, to]) => from <= slot && slot <= to)
    if (range === undefined) throw new Error(`no node serves slot ${slot}`)
    return Number(range[2][1])
  }

  async keyslot(key: string): Promise<number> {
    return Number(await this.command(this.nodes.find((n) => n.server.running)!.port, ['CLUSTER', 'KEYSLOT', key]))
  }

  node(port: number): ClusterNode {
    const node = this.nodes.find((n) => n.port === port)
    if (node === undefined) throw new Error(`no cluster node on ${port}`)
    return node
  }

  /** SIGKILLs the primary serving `slot`; resolves once another node serves it and the cluster is ok again. */
  async killOwnerOf(slot: number, timeoutMs = 30_000): Promise<{ killed: number; promoted: number }> {
    const killed = await this.ownerOf(slot)
    await this.node(killed).server.stop()
    const survivor = this.nodes.find((n) => n.server.running)!.port
    let promoted = 0
    await this.until(async () => {
      promoted = await this.ownerOf(slot, survivor)
      if (promoted === killed) return false
      return (await this.info(promoted, 'CLUSTER', 'INFO')).includes('cluster_state:ok')
    }, `a replica takes over slot ${slot}`, timeoutMs)
    return { killed, promoted }
  }

  async command(port: number, args: string[]): Promise<unknown> {
    return redisCommand(port, args)
  }

  async info(port: number, ...args: string[]): Promise<string> {
    return String(await this.command(port, args))
  }

  private until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    return pollUntil(check, what, timeoutMs)
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.server.stop()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function createCluster(addresses: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d })
    child.stderr.on('data', (d: Buffer) => { output += d })
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited ${code}:\n${output}`))))
  })
}
