/**
 * Auth state that belongs to the proxy, not to a policy generation: the counters, the registry of
 * live client ids, the lockout table (kept across reloads), and the backends to close at shutdown.
 */
import type { Logger } from '../log/logger.js'
import type { AuthBackend } from './backend.js'
import { ClientIdRegistry } from './client-ids.js'
import { LockoutTable, type SharedLockoutSink } from './lockout.js'
import { AuthStats } from '../stats/auth-stats.js'
import { ThrottledLog } from './throttled-log.js'

export class AuthRuntime {
  readonly stats: AuthStats
  readonly clientIds = new ClientIdRegistry()
  readonly logger: Logger
  readonly backendLog: ThrottledLog
  private lockoutTable: LockoutTable | null = null
  /** With a shared store (cluster.redis): failed logins are also counted fleet-wide (fleet/fleet.ts). */
  sharedLockout: SharedLockoutSink | null = null
  /** Weak: an old generation's backends (a reload) are dropped with it, not kept to the end. */
  private readonly backends = new Set<WeakRef<AuthBackend>>()

  constructor(stats: AuthStats, logger: Logger) {
    this.stats = stats
    this.logger = logger
    this.backendLog = new ThrottledLog(logger)
  }

  /** The lockout table, kept across reloads unless its size changes. */
  lockouts(maxEntries: number): LockoutTable {
    if (this.lockoutTable === null || this.lockoutTable.maxEntries !== maxEntries) this.lockoutTable = new LockoutTable(maxEntries)
    return this.lockoutTable
  }

  track(backend: AuthBackend): void {
    if (backend.close === undefined) return
    for (const ref of this.backends) if (ref.deref() === undefined) this.backends.delete(ref)
    this.backends.add(new WeakRef(backend))
  }

  /** Shutdown: closes the backends still in use (HTTP pools). */
  async close(): Promise<void> {
    const backends = [...this.backends].map((ref) => ref.deref()).filter((b) => b !== undefined)
    this.backends.clear()
    await Promise.all(backends.map((b) => b.close!()))
  }
}
