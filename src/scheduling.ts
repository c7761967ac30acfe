/**
 * `scheduling: batch | normal`: the Linux scheduling policy of every thread of this process.
 *
 * Under SCHED_BATCH (ordinary, unprivileged: no capability needed) a thread that wakes up does not
 * preempt the one running on its core. When Moat shares cores with the broker that is what makes
 * it cheap: the broker runs on until it blocks, then Moat reads everything that piled up in one go,
 * instead of waking for each message and taking the core from the broker (`npm run bench --
 * --sched batch` measures it; bench/README.md has the figures).
 *
 * Node has no call for sched_setscheduler(2), so this runs `chrt --all-tasks` (util-linux, on every
 * Debian and in the node images) on the process once: the threads that exist (V8's, libuv's) are
 * set, and threads made later inherit the policy of the thread that makes them, as cluster workers
 * inherit the primary's. Absent from the config, the policy the process was started with is left
 * alone (systemd's `CPUSchedulingPolicy=`, `chrt -b 0 moat …`). Never fatal: a policy that cannot
 * be set (no chrt, not Linux, refused) is logged at warn and the proxy runs on as it is.
 */
import { execFile } from 'node:child_process'
import type { MoatConfig, SchedulingPolicy } from './config/types.js'
import type { Logger } from './log/logger.js'

/** chrt's option for each policy (SCHED_OTHER is what Linux calls the normal policy). */
const CHRT_POLICY: Record<SchedulingPolicy, string> = { normal: '--other', batch: '--batch' }

/**
 * Puts every thread of this process under `policy`. Resolves to null when it is set, or to the
 * reason it could not be (also logged at warn); never rejects.
 */
export function applyScheduling(policy: SchedulingPolicy, logger: Logger): Promise<string | null> {
  const pid = process.pid
  return new Promise((resolve) => {
    if (process.platform !== 'linux') {
      resolve(failed(logger, policy, `scheduling policies are set on Linux only (this is ${process.platform}); running as started`))
      return
    }
    execFile('chrt', ['--all-tasks', CHRT_POLICY[policy], '--pid', '0', String(pid)], { timeout: 5_000 }, (err, _stdout, stderr) => {
      if (err === null) {
        logger.info({ event: 'scheduling', policy, pid }, `every thread runs under SCHED_${policy === 'batch' ? 'BATCH' : 'OTHER'}`)
        resolve(null)
        return
      }
      const code = (err as NodeJS.ErrnoException).code
      const reason = code === 'ENOENT'
        ? 'chrt was not found (it comes with util-linux): install it, or start moat under `chrt -b 0`'
        : `chrt failed: ${stderr.trim() || err.message}`
      resolve(failed(logger, policy, reason))
    })
  })
}

function failed(logger: Logger, policy: SchedulingPolicy, reason: string): string {
  logger.warn({ event: 'scheduling_failed', policy, reason }, `scheduling: ${policy} not applied: ${reason}`)
  return reason
}

/**
 * A reload that sets `scheduling` to another policy applies it (not awaited: the outcome is
 * logged). One that removes it leaves the running policy as it is: which one the process was
 * started with is not known any more.
 */
export function reloadScheduling(current: MoatConfig, next: MoatConfig, logger: Logger): void {
  if (next.scheduling === current.scheduling) return
  if (next.scheduling !== undefined) {
    void applyScheduling(next.scheduling, logger)
    return
  }
  logger.info({ event: 'scheduling', policy: current.scheduling }, 'scheduling removed from the config: the running policy stays until restart')
}
