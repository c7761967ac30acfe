/**
 * The proxy: its listeners, the sessions they accept, the check chain built from the config, the
 * counters, and the admin endpoint. `new Moat(config).start()` runs it; `shutdown()` drains it.
 */
import type { Registry } from 'prom-client'
import { AuthRuntime } from './auth/runtime.js'
import { Fleet } from './fleet/fleet.js'
import { describeRedis } from './fleet/redis-client.js'
import { LeaseLoop, type LeaseTransport } from './fleet/lease-loop.js'
import { RedisBudgetLeases } from './fleet/redis-budget-leases.js'
import { RedisStore } from './fleet/redis-store.js'
import { LocalStore, type SharedStore } from './fleet/shared-store.js'
import { BanApi } from './admin/ban-api.js'
import { advertise } from './admin/advertise.js'
import { adminToken, BearerCheck } from './admin/bearer.js'
import { FleetFanout } from './admin/fleet-fanout.js'
import { kickLocal, localPage } from './admin/local-sessions.js'
import type { SessionPage, SessionParams } from './admin/session-query.js'
import { SessionsApi } from './admin/sessions-api.js'
import { InstanceDirectory } from './fleet/instance-directory.js'
import type { RowStamp, SessionRow } from './session/session-row.js'
import { registerClusterMetrics } from './metrics/fleet-metrics.js'
import type { CheckChain } from './checks/chain.js'
import { checkFactories } from './checks/index.js'
import { PolicyStore } from './policy/store.js'
import { ConfigReloader, fileStamp, type FileStamp } from './policy/watch.js'
import type { MoatConfig } from './config/types.js'
import { ConnectionLimiter } from './limits/connections.js'
import { OverloadMonitor } from './limits/overload.js'
import { Listener } from './listeners/index.js'
import { ticketSeedsFor, type TicketSeeds } from './listeners/ticket-keys.js'
import { createLogger, type Logger } from './log/logger.js'
import { AdminServer } from './admin/server.js'
import { createRegistry } from './metrics/registry.js'
import { Stats } from './stats/stats.js'
import { applyScheduling, reloadScheduling } from './scheduling.js'
import { cAllocator } from './c-allocator.js'
import { HeapTrim } from './heap-trim.js'
import { ReadCoalescing } from './net/read-coalescing.js'
import type { ClientSocket, ConnInfo } from './client/conn-info.js'
import type { SessionContext } from './session/context.js'
import { Session, type SessionInfo } from './session/session.js'
import { DialFailureLog } from './session/upstream.js'

export interface MoatOptions {
  logger?: Logger
  /** Where fleet-wide limits and bans live; absent: a RedisStore when `cluster.redis` is set, else in process. Closed at shutdown. */
  store?: SharedStore
  /** false: no admin endpoint even when the config has one (a cluster worker: the primary serves it). */
  admin?: boolean
  /** Session-ticket seeds of the TLS listeners; absent: the fleet's in Redis with `cluster.redis`, else this process's. */
  ticketSeeds?: TicketSeeds
  /** Where per-user rates lease their fleet budgets; absent: Redis with `cluster.redis`, else per-process buckets (a `workers: N` worker: its primary). */
  leaseTransport?: LeaseTransport
}

export class Moat implements SessionContext {
  readonly policy: PolicyStore
  readonly logger: Logger
  readonly stats = new Stats()
  readonly registry: Registry
  readonly overload: OverloadMonitor
  readonly limiter: ConnectionLimiter
  /** Auth state kept across reloads: live client ids, lockout counters, backends to close. */
  readonly auth: AuthRuntime
  /** Fleet-wide limits and bans (fleet/fleet.ts) over `store`. */
  readonly store: SharedStore
  readonly fleet: Fleet
  /** Fleet-wide per-user rates (leased budgets from Redis, or from the primary of `workers: N`); null: per-instance buckets. */
  readonly userBudgets: LeaseLoop | null
  readonly coalescing: ReadCoalescing
  readonly dialFailures: DialFailureLog
  readonly ticketSeeds: TicketSeeds
  private readonly listeners: Listener[]
  private readonly admin: AdminServer | null
  /** Where the fleet finds this admin endpoint (cluster.redis and an admin token). */
  private directory: InstanceDirectory | null = null
  private readonly sessions = new Set<Session>()
  private sessionIds = 0
  private draining = false
  private configReloader: ConfigReloader | null = null
  /** The config file's stamp when Moat was made from it: an edit after that and before the watch starts is still seen. */
  private readonly configStamp: FileStamp | null
  private warnedRefusal = false
  private drainWaiters: Array<() => void> = []
  private heapTrim: HeapTrim | null = null

  constructor(config: MoatConfig, options: MoatOptions = {}) {
    this.logger = options.logger ?? createLogger(config.log.level)
    this.configStamp = config.file === '' ? null : fileStamp(config.file)
    this.auth = new AuthRuntime(this.stats.auth, this.logger)
    this.dialFailures = new DialFailureLog(this.logger)
    const redis = config.cluster?.redis ?? null
    this.store = options.store ?? (redis !== null ? new RedisStore(redis, this.logger, this.stats.cluster) : new LocalStore())
    // Failed logins also count fleet-wide with a shared store (the lockout policy is built with the PolicyStore below).
    if (this.store.kind !== 'local') this.auth.sharedLockout = { fail: (address, username, lockout) => this.fleet.fail(address, username, lockout) }
    this.userBudgets = options.leaseTransport !== undefined ? new LeaseLoop(options.leaseTransport, this.logger, this.stats.cluster)
      : this.store instanceof RedisStore ? new RedisBudgetLeases(this.store, this.store.config.prefix, this.logger, this.stats.cluster) : null
    this.policy = new PolicyStore(config, checkFactories, { logger: this.logger, stats: this.stats, auth: this.auth, userBudgets: this.userBudgets ?? undefined })
    this.fleet = new Fleet(this.store, this.policy, this.stats.cluster, this.logger, () => this.sessions)
    this.overload = new OverloadMonitor(this.policy)
    this.limiter = new ConnectionLimiter(this.policy, this.overload)
    this.coalescing = new ReadCoalescing(this.stats, config.coalescing)
    this.registry = createRegistry(this.stats, this.policy)
    registerClusterMetrics(this.registry, this.stats.cluster, this.fleet)
    this.ticketSeeds = options.ticketSeeds ?? ticketSeedsFor(this.store, this.logger)
    this.listeners = config.listeners.map((l) => new Listener(l, this, this.accept.bind(this)))
    this.admin = config.admin === null || options.admin === false ? null : this.adminServer(config)
  }

  private adminServer(config: MoatConfig): AdminServer {
    const token = adminToken(config.admin)
    const bearer = new BearerCheck(token)
    const store = this.store
    if (store instanceof RedisStore && token !== null) {
      this.directory = new InstanceDirectory(store.redis, store.config.prefix, store.instanceId, this.logger)
    }
    const fanout = this.directory === null ? null : new FleetFanout(this.directory, token!)
    const sessions = new SessionsApi({
      page: async (params, stamp) => ({ page: this.sessionPage(params, stamp), missing: [] }),
      kick: async (clientId, stamp) => ({ rows: this.kickSessions(clientId, stamp), missing: [] }),
    }, bearer, fanout, this.logger)
    return new AdminServer(config.admin!, this.registry, {
      listenersUp: () => !this.draining && this.listeners.every((l) => l.listening),
      upstream: config.upstream,
    }, { bans: new BanApi(store, bearer, this.logger), sessions })
  }

  /** The running configuration (replaced by a successful reload). */
  get config(): MoatConfig {
    return this.policy.config
  }

  get chain(): CheckChain {
    return this.policy.chain
  }

  /**
   * Reloads the config file (SIGHUP): on success the new policy applies to every packet from now
   * on, on open sessions too; an invalid file leaves the running policy in place, logged at warn
   * and counted. Nothing changed since the last reload (the config and the files it names read the
   * same): nothing is done, logged at debug, and true is returned. Listener and admin addresses are
   * bound at start: changing them needs a restart.
   */
  reload(): boolean {
    const reloader = this.reloader()
    if (reloader === null) {
      this.logger.warn({ event: 'config_reload', outcome: 'failure' }, 'reload: this config was not loaded from a file')
      this.stats.configReloadFailures += 1
      return false
    }
    return reloader.reload() !== 'failed'
  }

  /**
   * Reloads when the config file changes (polled every `intervalMs`: robust to editors that
   * replace the file, and to config-management tools). SIGHUP still works; a change both bring
   * is applied once.
   */
  watchConfig(onReloaded?: () => void, intervalMs = 1000): void {
    this.reloader()?.watch(onReloaded, intervalMs)
  }

  /** Null for a config built in code (no file to reload). */
  private reloader(): ConfigReloader | null {
    if (this.configReloader === null && this.policy.config.file !== '') {
      this.configReloader = new ConfigReloader(this.policy.config.file, this.logger, {
        apply: (next) => this.applyConfig(next),
        countFailure: () => { this.stats.configReloadFailures += 1 },
      }, 'reload failed: keeping the running policy', this.configStamp)
    }
    return this.configReloader
  }

  /** A reloaded config: compiled first (a failure throws and leaves the running policy in place), then applied. */
  private applyConfig(next: MoatConfig): void {
    const current = this.policy.config
    this.policy.swap(next)
    if (listenerShape(next) !== listenerShape(current) || JSON.stringify(next.admin) !== JSON.stringify(current.admin)) {
      this.logger.warn({ event: 'config_reload', file: current.file }, 'listener and admin changes take effect on restart; the running ones are kept')
    }
    if (JSON.stringify(next.cluster ?? null) !== JSON.stringify(current.cluster ?? null)) {
      this.logger.warn({ event: 'config_reload', file: current.file }, 'cluster changes take effect on restart; the running shared store is kept')
    }
    if (next.log.format !== current.log.format || next.log.file !== current.log.file) {
      this.logger.warn({ event: 'config_reload', file: current.file }, 'log.format and log.file changes take effect on restart; the log goes on where and as it was')
    }
    reloadScheduling(current, next, this.logger)
    this.coalescing.configure(next.coalescing)
    for (const listener of this.listeners) listener.reload(next) // new certificates for new connections
    this.logger.level = next.log.level
    this.stats.configReloads += 1
    // Open sessions adopt the new policy now, not at their next packet: a revoked subscription
    // must stop delivering even to a client that sends nothing.
    for (const session of this.sessions) session.adoptPolicy()
    this.logger.info({ event: 'config_reload', outcome: 'success', file: current.file, generation: this.policy.generation }, 'config reloaded')
  }

  /** Binds every listener (and the admin endpoint). Rejects with MOAT_ERR_LISTEN naming the one that failed. */
  async start(): Promise<void> {
    this.userBudgets?.start()
    if (this.store instanceof RedisStore) {
      this.store.start()
      if (!(await this.store.whenUp(Math.max(2000, this.store.config.commandTimeoutMs * 4)))) {
        this.logger.error({ event: 'cluster_store_down', redis: describeRedis(this.store.config), onRedisDown: this.store.config.onRedisDown }, 'redis unreachable at start: running with onRedisDown until it answers')
      }
    }
    // Before the first client: every thread (and every one made later) runs under the policy.
    if (this.config.scheduling !== undefined) await applyScheduling(this.config.scheduling, this.logger)
    this.heapTrim = new HeapTrim(() => this.sessions.size, this.logger)
    try {
      this.overload.start()
      for (const listener of this.listeners) await listener.listen()
      if (this.admin !== null) await this.admin.listen()
    } catch (err) {
      for (const listener of this.listeners) listener.close()
      await this.admin?.close()
      this.overload.stop()
      this.heapTrim?.stop()
      this.coalescing.stop()
      await this.directory?.close()
      await this.userBudgets?.close()
      await this.store.close()
      throw err
    }
    for (const listener of this.listeners) {
      const { host, port } = listener.address()
      this.logger.info({ event: 'listening', listener: listener.config.name, protocol: listener.config.protocol, host, port }, 'listening')
    }
    if (this.admin !== null) {
      const { host, port } = this.admin.address()
      this.logger.info({ event: 'admin_listening', host, port }, 'admin endpoint listening')
      if (this.directory !== null) advertise(this.directory, this.config.admin!, { host, port }, this.logger)
    }
    if (this.config.acl === null) {
      this.logger.warn({ event: 'no_acl' }, 'no `acl` section: every client may publish and subscribe to every topic')
    }
    if (this.config.upstream.tls?.insecure === true) {
      this.logger.warn({ event: 'upstream_tls_insecure', upstream: `${this.config.upstream.host}:${this.config.upstream.port}` }, 'upstream.tls.insecure: the broker certificate is NOT verified; anyone on the path can impersonate the broker')
    }
    this.logger.info({ event: 'ready', upstream: `${this.config.upstream.host}:${this.config.upstream.port}`, checks: this.chain.names, allocator: cAllocator() }, 'moat ready')
  }

  /** The address a listener actually bound (port 0 in the config picks a free one). */
  address(listener?: string): { host: string; port: number } {
    const found = listener === undefined ? this.listeners[0] : this.listeners.find((l) => l.config.name === listener)
    if (found === undefined) throw new Error(`no listener named '${listener}'`)
    return found.address()
  }

  adminAddress(): { host: string; port: number } | null {
    return this.admin?.address() ?? null
  }

  get sessionCount(): number {
    return this.sessions.size
  }

  /** One snapshot per open session (buffers, pause state, identity). */
  sessionInfo(): SessionInfo[] {
    return [...this.sessions].map((s) => s.info())
  }

  /** A page of the sessions view (admin/sessions-api.ts) of this process's sessions. */
  sessionPage(params: SessionParams, stamp: RowStamp = {}): SessionPage {
    return localPage(this.sessions, params, stamp)
  }

  /** Kicks the sessions of `clientId`; their rows. */
  kickSessions(clientId: string, stamp: RowStamp = {}): SessionRow[] {
    return kickLocal(this.sessions, clientId, stamp)
  }

  private accept(socket: ClientSocket, conn: ConnInfo): void {
    if (this.draining) {
      socket.destroy()
      return
    }
    this.stats.countAccept(conn.listener)
    this.stats.sessionsOpen += 1
    // Refused connections still get a session, which answers their CONNECT with a refusing CONNACK
    // in the client's version and never dials the broker.
    const refusal = this.fleet.addressBanned(conn.remoteAddress) ? 'banned' : this.limiter.admit(conn.remoteAddress)
    if (refusal !== null) this.stats.countRefused(conn.listener, refusal)
    if (refusal !== null && !this.warnedRefusal) {
      this.warnedRefusal = true
      this.logger.warn({ event: 'connection_refused', reason: refusal, remote: conn.remoteAddress }, 'refusing new connections (logged once; moat_connections_refused_total counts them)')
    }
    this.sessions.add(new Session(this, socket, conn, refusal))
    this.heapTrim?.noteOpen(this.sessions.size)
  }

  nextSessionId(): number {
    return ++this.sessionIds
  }

  sessionEnded(session: Session): void {
    this.sessions.delete(session)
    const { refusal, userAdmitted, fleetSlots } = session.admission
    if (refusal === null) this.limiter.release(session.state.remoteAddress)
    if (userAdmitted) this.limiter.releaseUser(session.state.username!)
    if (fleetSlots !== 0) this.fleet.release(session.state.remoteAddress, session.state.username, fleetSlots)
    this.auth.clientIds.release(session.state)
    if (this.sessions.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters
      this.drainWaiters = []
      for (const wake of waiters) wake()
    }
  }

  /**
   * Graceful shutdown: stop accepting, let open sessions go on for `gracePeriodMs` (default from the
   * config), then close the rest (5.0 clients get DISCONNECT 0x8B, server shutting down).
   * Resolves when every session has ended.
   */
  async shutdown(gracePeriodMs = this.config.shutdown.gracePeriodMs): Promise<void> {
    const first = !this.draining
    this.draining = true
    if (first) {
      this.logger.info({ event: 'shutdown', sessions: this.sessions.size, gracePeriodMs }, 'shutting down: no new connections')
      for (const listener of this.listeners) listener.close()
    }
    if (this.sessions.size > 0 && gracePeriodMs > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        this.drained(),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, gracePeriodMs) }),
      ])
      clearTimeout(timer)
    }
    if (this.sessions.size > 0) {
      this.logger.info({ event: 'shutdown_close', sessions: this.sessions.size }, 'grace period over: closing sessions')
      for (const session of this.sessions) session.shutdown()
      await this.drained()
    }
    if (first) this.configReloader?.stop()
    if (first) {
      // The summaries of failures still due (broker or auth backend down), rather than after the end.
      this.dialFailures.close()
      this.auth.backendLog.close()
      this.overload.stop()
      this.heapTrim?.stop()
      this.coalescing.stop()
      await this.admin?.close()
      await this.auth.close()
      await this.directory?.close()
      await this.userBudgets?.close()
      await this.store.close()
    }
  }

  private drained(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }
}

/** Listener settings bound at start (TLS material is not among them: a reload applies it). */
function listenerShape(config: MoatConfig): string {
  return JSON.stringify(config.listeners.map(({ tls: _tls, ...rest }) => rest))
}
