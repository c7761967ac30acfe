/**
 * How long a fleet runs on local limits when the primary of its Redis is killed, and what it
 * admits meanwhile. Two Moat processes (node dist/cli.js) in front of Mosquitto share a real
 * Sentinel set (1 primary, 1 replica, 3 Sentinels, down-after 1 s) or a real Redis Cluster
 * (3 primaries, 3 replicas, node timeout 1.5 s); `limits.connections.perUsername: 1`.
 *
 * The user `alice` holds her one session on instance A: the fleet is full for her. A probe sends
 * CONNECT as alice to instance B over and over (one at a time; an admitted probe is closed and B is
 * let forget it before the next, so B's own local limit never refuses): refused while the
 * fleet-wide count holds, admitted on local limits while B cannot reach Redis. The primary (the
 * one serving Moat's slot, in Cluster) is SIGKILLed at t0. Reported per run:
 * - enforced: t0 to the first refused probe after which every probe is refused again;
 * - admitted: probes admitted on local limits meanwhile, and moat_cluster_local_fallbacks_total;
 * - promoted: t0 to the Sentinels / the cluster naming the new primary.
 *
 *   npm run bench:failover -- [--mode sentinel|cluster|both] [--runs 3]
 */
import { parseArgs } from 'node:util'
import { FleetBench } from '../test/helpers/fleet-bench.js'
import { RedisCluster } from '../test/helpers/redis-cluster.js'
import { RedisSentinels, SENTINEL_NAME } from '../test/helpers/redis-sentinel.js'
import { uid } from '../test/helpers/clients.js'

const { values } = parseArgs({ options: { mode: { type: 'string', default: 'both' }, runs: { type: 'string', default: '3' } } })
const RUNS = Number(values.runs)
const MODES = values.mode === 'both' ? ['sentinel', 'cluster'] : [values.mode!]
/** Consecutive refusals that mean the fleet-wide limit holds again. */
const STABLE = 10
const GIVE_UP_MS = 60_000

interface Run {
  mode: string
  enforcedMs: number
  promotedMs: number
  admitted: number
  fallbacks: number
  probes: number
}

interface Store {
  redis: Record<string, unknown>
  /** Kills the primary; resolves with the time (since t0) the new one was named. */
  kill(): { t0: number; promoted: Promise<number> }
  stop(): Promise<void>
}

async function sentinelStore(prefix: string): Promise<Store> {
  const set = await RedisSentinels.start()
  return {
    redis: { sentinel: { name: SENTINEL_NAME, nodes: set.nodes }, prefix, commandTimeout: '300ms' },
    kill() {
      const t0 = performance.now()
      const promoted = set.killPrimary().then(() => set.failedOver(GIVE_UP_MS)).then(() => performance.now() - t0)
      return { t0, promoted }
    },
    stop: () => set.stop(),
  }
}

async function clusterStore(prefix: string): Promise<Store> {
  const cluster = await RedisCluster.start()
  const slot = await cluster.keyslot(`{${prefix}}:x`)
  return {
    redis: { cluster: { nodes: cluster.addresses }, prefix, commandTimeout: '300ms' },
    kill() {
      const t0 = performance.now()
      const promoted = cluster.killOwnerOf(slot, GIVE_UP_MS).then(() => performance.now() - t0)
      return { t0, promoted }
    },
    stop: () => cluster.stop(),
  }
}

async function once(mode: string): Promise<Run> {
  const prefix = uid(`failover-${mode}`)
  const store = mode === 'sentinel' ? await sentinelStore(prefix) : await clusterStore(prefix)
  let fleet: FleetBench | null = null
  try {
    fleet = await FleetBench.start({ redis: store.redis, connections: { perUsername: 1 } })
    const [a, b] = fleet.moats as [FleetBench['moats'][0], FleetBench['moats'][0]]
    const { code } = fleet
    const holder = await fleet.connect(a, 'alice')
    if (holder.code !== code.ok) throw new Error(`alice's first session refused: ${holder.code}`)
    const baseline = await b.metric('moat_sessions_open')
    const probe = async (): Promise<boolean> => {
      const attempt = await fleet!.connect(b, 'alice')
      if (attempt.code === code.quota) return false
      if (attempt.code !== code.ok) throw new Error(`probe answered ${attempt.code}`)
      attempt.client.destroy()
      // B forgets the probe (its local count back to 0) before the next one.
      while (await b.metric('moat_sessions_open') > baseline) await new Promise((r) => setTimeout(r, 5))
      return true
    }
    if (await probe()) throw new Error('the fleet-wide limit does not hold before the kill')
    const fallbacksBefore = (await fleet.metrics('moat_cluster_local_fallbacks_total')).reduce((x, y) => x + y, 0)

    const { t0, promoted } = store.kill()
    let admitted = 0
    let probes = 0
    let refusedSince: number | null = null
    let refusedRun = 0
    while (refusedRun < STABLE) {
      if (performance.now() - t0 > GIVE_UP_MS) throw new Error('limits not enforced again within a minute')
      const started = performance.now()
      const ok = await probe()
      probes++
      if (ok) {
        admitted++
        refusedRun = 0
        refusedSince = null
      } else {
        if (refusedRun === 0) refusedSince = started
        refusedRun++
      }
    }
    const promotedMs = await promoted
    // Refusals right after the kill, before any instance noticed it, are not "enforced again".
    if (admitted === 0) throw new Error('no probe was admitted: the outage was not seen (probe too slow?)')
    const fallbacks = (await fleet.metrics('moat_cluster_local_fallbacks_total')).reduce((x, y) => x + y, 0) - fallbacksBefore
    return { mode, enforcedMs: refusedSince! - t0, promotedMs, admitted, fallbacks, probes }
  } finally {
    await fleet?.stop()
    await store.stop()
  }
}

const results: Run[] = []
for (const mode of MODES) {
  for (let i = 0; i < RUNS; i++) {
    const run = await once(mode)
    results.push(run)
    console.log(`${mode} run ${i + 1}: limits enforced again ${(run.enforcedMs / 1000).toFixed(2)} s after the kill (new primary named at ${(run.promotedMs / 1000).toFixed(2)} s); admitted on local limits meanwhile: ${run.admitted} of ${run.probes} probes (moat_cluster_local_fallbacks_total +${run.fallbacks})`)
  }
}
console.log(JSON.stringify({ bench: 'failover', runs: results }))
process.exit(0)
