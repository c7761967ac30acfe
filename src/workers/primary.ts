/**
 * The cluster primary (`workers: N`, N > 1): it forks N workers that each run a Moat on the same
 * listener ports (node:cluster hands each accepted connection to one worker), and itself accepts
 * no MQTT connection. It
 * - serves the admin endpoint: /metrics merged from every worker, /healthz, /readyz (ready when
 *   every worker is serving and the broker accepts TCP connections);
 * - validates a new config file once (SIGHUP or the file changing), then tells every worker to
 *   reload; an invalid file reaches no worker;
 * - answers the workers' fleet-wide limit calls from one store (store-host.ts), and without
 *   cluster.redis their per-user rate leases from one set of fleet buckets (lease-host.ts);
 * - restarts a worker that ends unexpectedly, after a backoff, and gives up (exit 1) when workers
 *   keep crashing;
 * - on shutdown, has every worker drain for the grace period, then exits 0;
 * - passes a reopen of the log file (SIGHUP, SIGUSR2) on to every worker;
 * - holds the session-ticket seeds every worker uses (ticket-seed-host.ts);
 * - serves the sessions view of its workers' sessions (session-host.ts), and with cluster.redis
 *   advertises its admin endpoint, and names its workers, in the fleet's directory.
 */
import cluster, { type Worker } from 'node:cluster'
import { checkFactories } from '../checks/index.js'
import { detachedCheckEnv } from '../checks/env.js'
import { PolicyStore } from '../policy/store.js'
import { ConfigReloader } from '../policy/watch.js'
import type { MoatConfig } from '../config/types.js'
import { errorCodes, MoatError, type MoatErrorCode } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { AdminServer } from '../admin/server.js'
import { BanApi } from '../admin/ban-api.js'
import { advertise } from '../admin/advertise.js'
import { adminToken, BearerCheck } from '../admin/bearer.js'
import { FleetFanout } from '../admin/fleet-fanout.js'
import { SessionsApi } from '../admin/sessions-api.js'
import { InstanceDirectory } from '../fleet/instance-directory.js'
import { applyScheduling, reloadScheduling } from '../scheduling.js'
import { RedisStore } from '../fleet/redis-store.js'
import { RedisTicketSeeds } from '../fleet/redis-ticket-seeds.js'
import { LocalTicketSeeds } from '../listeners/ticket-keys.js'
import type { SharedStore } from '../fleet/shared-store.js'
import { isMessage, post, type Channel, type PrimaryMessage, type WorkerMessage, type WorkerMetrics } from './messages.js'
import { ClusterMetrics, type ClusterSource } from './metrics.js'
import { StoreHost } from './store-host.js'
import { fleetBucketCap, LeaseHost } from './lease-host.js'
import { WorkerSessions } from './session-host.js'
import { TicketSeedHost } from './ticket-seed-host.js'
import { WORKER_ENV, workerCount } from './worker-count.js'

/** Crashes (across all workers) within CRASH_WINDOW_MS after which the primary gives up. */
const MAX_CRASHES = 5
const CRASH_WINDOW_MS = 60_000
const BACKOFF_FIRST_MS = 250
const BACKOFF_MAX_MS = 10_000
/** How long a scrape waits for a worker's metrics; a worker that does not answer is left out. */
const SCRAPE_TIMEOUT_MS = 2000
/** After the grace period, how long workers get to close before they are killed. */
const STOP_MARGIN_MS = 10_000

interface Slot {
  /** 1..N, kept by a restarted worker. */
  readonly id: number
  worker: Worker | null
  ready: boolean
  fatal: { message: string; code: string | null } | null
  restartTimer: NodeJS.Timeout | null
  /** Its store's instance id with cluster.redis (named in the fleet's directory). */
  instance: string | null
}

interface Scrape {
  readonly waiting: Set<number>
  readonly answers: Array<{ worker: number; metrics: WorkerMetrics }>
  readonly finish: () => void
}

export class ClusterPrimary implements ClusterSource {
  readonly workersWanted: number
  restarts = 0
  reloads = 0
  reloadFailures = 0
  /** Resolves with the exit code once every worker has ended after a stop (or the primary gave up). */
  readonly finished: Promise<number>
  private readonly file: string
  private text: string
  private config: MoatConfig
  private readonly logger: Logger
  private readonly slots: Slot[]
  private readonly host: StoreHost
  /** The fleet buckets of per-user rates without cluster.redis (with it, workers lease from Redis). */
  private readonly leases: LeaseHost | null
  /** Where `moat ban` adds its bans: the workers' store, or Redis with cluster.redis (the workers use it too). */
  private readonly banStore: SharedStore
  private readonly tickets: TicketSeedHost
  private readonly admin: AdminServer | null
  private readonly sessions: WorkerSessions
  /** Where the fleet finds this admin endpoint (cluster.redis and an admin token). */
  private readonly directory: InstanceDirectory | null
  private readonly scrapes = new Map<number, Scrape>()
  private scrapeIds = 0
  private crashes: number[] = []
  private starting = true
  private stopping = false
  private exitCode = 0
  private startup: { resolve: () => void; reject: (err: Error) => void } | null = null
  private finish!: (code: number) => void
  private killTimer: NodeJS.Timeout | null = null
  private readonly reloader: ConfigReloader
  /** Callers of stop() waiting for every worker to end. */
  private ended: Array<() => void> = []

  constructor(file: string, text: string, config: MoatConfig, logger: Logger) {
    this.file = file
    this.text = text
    this.config = config
    this.logger = logger
    this.workersWanted = workerCount(config)
    this.slots = Array.from({ length: this.workersWanted }, (_, i) => ({ id: i + 1, worker: null, ready: false, fatal: null, restartTimer: null, instance: null }))
    this.host = new StoreHost({ logger })
    const redis = config.cluster?.redis ?? null
    this.leases = redis === null ? new LeaseHost(fleetBucketCap(config, this.workersWanted), logger) : null
    this.banStore = redis === null ? this.host.store : new RedisStore(redis, logger)
    const seeds = this.banStore instanceof RedisStore ? new RedisTicketSeeds(this.banStore.redis, this.banStore.config.prefix, logger) : new LocalTicketSeeds()
    this.tickets = new TicketSeedHost(seeds, () => this.slots.flatMap((s) => (s.worker === null ? [] : [s.worker as unknown as Channel])))
    this.sessions = new WorkerSessions(() => this.slots.flatMap((s) => (s.worker !== null && s.ready ? [{ id: s.id, channel: s.worker as unknown as Channel }] : [])))
    const token = adminToken(config.admin)
    const bearer = new BearerCheck(token)
    this.directory = this.banStore instanceof RedisStore && token !== null && config.admin !== null
      ? new InstanceDirectory(this.banStore.redis, this.banStore.config.prefix, this.banStore.instanceId, logger) : null
    this.admin = config.admin === null ? null : new AdminServer(config.admin, new ClusterMetrics(this), {
      listenersUp: () => !this.starting && !this.stopping && this.slots.every((s) => s.ready),
      upstream: config.upstream,
    }, {
      bans: new BanApi(this.banStore, bearer, logger),
      sessions: new SessionsApi(this.sessions, bearer, this.directory === null ? null : new FleetFanout(this.directory, token!), logger),
    })
    this.finished = new Promise((resolve) => { this.finish = resolve })
    this.reloader = new ConfigReloader(file, logger, {
      apply: (next, text) => this.applyConfig(next, text),
      countFailure: () => { this.reloadFailures += 1 },
    }, 'reload failed: every worker keeps the running policy')
  }

  /** The config the workers run (the last one that passed validation). */
  get running(): MoatConfig {
    return this.config
  }

  get workersRunning(): number {
    return this.slots.filter((s) => s.ready).length
  }

  /** Opens the admin endpoint and starts every worker; rejects (after stopping the rest) when one cannot start. */
  async start(): Promise<void> {
    if (this.banStore instanceof RedisStore) this.banStore.start()
    this.tickets.configure(this.config)
    if (this.admin !== null) await this.admin.listen()
    if (this.directory !== null) advertise(this.directory, this.config.admin!, this.admin!.address(), this.logger)
    // Before the forks: workers inherit the policy (and set it for themselves again at start).
    if (this.config.scheduling !== undefined) await applyScheduling(this.config.scheduling, this.logger)
    const started = new Promise<void>((resolve, reject) => { this.startup = { resolve, reject } })
    for (const slot of this.slots) this.fork(slot)
    try {
      await started
    } catch (err) {
      await this.stop(0)
      throw err
    }
    this.starting = false
    if (this.admin !== null) {
      const { host, port } = this.admin.address()
      this.logger.info({ event: 'admin_listening', host, port }, 'admin endpoint listening')
    }
    this.logger.info({ event: 'ready', workers: this.workersWanted, pids: this.slots.map((s) => s.worker?.process.pid) }, `moat ready: ${this.workersWanted} workers`)
  }

  /**
   * Validates the config file once; on success every worker reloads it. An invalid file reaches no
   * worker (the running policy stays, logged at warn and counted); a file whose inputs are those
   * running (SIGHUP and the file watch seeing one edit) reaches none either: nothing to do.
   */
  reload(): boolean {
    return this.reloader.reload() !== 'failed'
  }

  /** Reloads when the config file changes (polled), once for all workers. */
  watchConfig(onReloaded?: () => void, intervalMs = 1000): void {
    this.reloader.watch(onReloaded, intervalMs)
  }

  /** A valid new config (compiled here first: a bad password file is refused before any worker sees it). */
  private applyConfig(next: MoatConfig, text: string): void {
    const env = detachedCheckEnv()
    new PolicyStore(next, checkFactories, env) // eslint-disable-line no-new -- compiles the policy; throws when it cannot
    void env.auth.close()
    if (workerCount(next) !== this.workersWanted) {
      this.logger.warn({ event: 'config_reload', file: this.file, workers: next.workers }, '`workers` changes take effect on restart; the running workers are kept')
    }
    this.text = text
    reloadScheduling(this.config, next, this.logger) // the primary's own threads; each worker sets its own on reload
    this.config = next
    this.logger.level = next.log.level
    this.leases?.resize(fleetBucketCap(next, this.workersWanted))
    this.reloads += 1
    this.tickets.configure(next) // before the reload message: a listener that turns resumption on has its seed
    for (const slot of this.slots) if (slot.worker !== null && slot.ready) this.send(slot.worker, { moat: 'reload' })
    this.logger.info({ event: 'config_reload', outcome: 'sent', file: this.file, workers: this.workersRunning }, 'config valid: every worker reloads it')
  }

  /** Every worker reopens its log file: each has its own descriptor of it. */
  reopenLogs(): void {
    for (const slot of this.slots) if (slot.worker !== null) this.send(slot.worker, { moat: 'reopen-log' })
  }

  /**
   * Every worker drains (Moat.shutdown with `graceMs`, default the config's grace period); resolves
   * once all have ended. A second call with 0 closes their sessions at once.
   */
  async stop(graceMs = this.config.shutdown.gracePeriodMs): Promise<void> {
    const first = !this.stopping
    this.stopping = true
    if (first) {
      this.logger.info({ event: 'shutdown', workers: this.workersRunning, gracePeriodMs: graceMs }, 'shutting down: every worker drains')
      this.reloader.stop()
      for (const slot of this.slots) {
        if (slot.restartTimer !== null) clearTimeout(slot.restartTimer)
        slot.restartTimer = null
      }
      this.killTimer = setTimeout(() => this.killAll(), graceMs + STOP_MARGIN_MS)
    }
    for (const slot of this.slots) if (slot.worker !== null) this.send(slot.worker, { moat: 'shutdown', graceMs })
    await this.allEnded()
  }

  /** Each worker's metrics, for one scrape. */
  collect(): Promise<Array<{ worker: number; metrics: WorkerMetrics }>> {
    const live = this.slots.filter((s) => s.worker !== null && s.ready)
    if (live.length === 0) return Promise.resolve([])
    const id = ++this.scrapeIds
    return new Promise((resolve) => {
      const scrape: Scrape = {
        waiting: new Set(live.map((s) => s.id)),
        answers: [],
        finish: () => {
          clearTimeout(timer)
          this.scrapes.delete(id)
          resolve(scrape.answers.sort((a, b) => a.worker - b.worker))
        },
      }
      const timer = setTimeout(scrape.finish, SCRAPE_TIMEOUT_MS)
      this.scrapes.set(id, scrape)
      for (const slot of live) this.send(slot.worker!, { moat: 'metrics', id })
    })
  }

  private fork(slot: Slot): void {
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.id) })
    slot.worker = worker
    slot.ready = false
    slot.fatal = null
    this.host.attach(worker as unknown as Channel)
    this.leases?.attach(worker as unknown as Channel)
    worker.on('message', (message: unknown) => this.receive(slot, worker, message))
    worker.on('exit', (code, signal) => this.exited(slot, worker, code, signal))
    // An 'error' on the IPC channel (the worker died mid-send) must not take the primary down.
    worker.on('error', (err) => this.logger.warn({ event: 'worker_channel_error', worker: slot.id, error: err.message }, 'worker IPC error'))
  }

  private receive(slot: Slot, worker: Worker, message: unknown): void {
    if (!isMessage(message) || slot.worker !== worker) return
    const m = message as WorkerMessage
    switch (m.moat) {
      case 'hello':
        this.tickets.greet(worker as unknown as Channel)
        this.send(worker, { moat: 'start', file: this.file, text: this.text })
        return
      case 'ready': {
        slot.ready = true
        slot.instance = m.instance
        if (m.instance !== null) this.directory?.serve(m.instance)
        this.logger.info({ event: 'worker_ready', worker: slot.id, pid: worker.process.pid, listeners: m.listeners, store: m.store }, `worker ${slot.id} serving`)
        if (this.starting && this.slots.every((s) => s.ready)) this.startup?.resolve()
        return
      }
      case 'fatal':
        slot.fatal = { message: m.message, code: m.code }
        this.logger.error({ event: 'worker_failed', worker: slot.id, pid: worker.process.pid, error: m.message }, `worker ${slot.id} could not start`)
        if (this.starting) this.startup?.reject(new MoatError(knownCode(m.code), m.message))
        return
      case 'reloaded':
        if (!m.ok) this.logger.warn({ event: 'worker_reload_failed', worker: slot.id, generation: m.generation }, `worker ${slot.id} kept its running policy (see its log line)`)
        return
      case 'metrics': {
        const scrape = this.scrapes.get(m.id)
        if (scrape === undefined || !scrape.waiting.delete(slot.id)) return
        scrape.answers.push({ worker: slot.id, metrics: m.metrics })
        if (scrape.waiting.size === 0) scrape.finish()
        return
      }
      default:
        this.sessions.receive(slot.id, m)
    }
  }

  private exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    this.host.detach(worker as unknown as Channel)
    this.leases?.detach(worker as unknown as Channel) // nothing given back: its buckets refill on their own
    if (slot.worker !== worker) return
    slot.worker = null
    slot.ready = false
    this.sessions.gone(slot.id)
    if (slot.instance !== null) this.directory?.unserve(slot.instance)
    slot.instance = null
    for (const scrape of this.scrapes.values()) if (scrape.waiting.delete(slot.id) && scrape.waiting.size === 0) scrape.finish()
    if (this.stopping) {
      this.logger.info({ event: 'worker_exit', worker: slot.id, code, signal }, `worker ${slot.id} ended`)
      this.checkAllEnded()
      return
    }
    if (this.starting) {
      this.startup?.reject(slot.fatal !== null
        ? new MoatError(knownCode(slot.fatal.code), slot.fatal.message)
        : new MoatError('MOAT_ERR_WORKER', `worker ${slot.id} ended before it was ready (${signal ?? `exit code ${code}`})`))
      return
    }
    const now = Date.now()
    this.crashes = this.crashes.filter((t) => now - t < CRASH_WINDOW_MS)
    this.crashes.push(now)
    this.logger.error({ event: 'worker_exit', worker: slot.id, pid: worker.process.pid, code, signal, crashes: this.crashes.length }, `worker ${slot.id} ended unexpectedly (${signal ?? `exit code ${code}`})`)
    if (this.crashes.length >= MAX_CRASHES) {
      this.logger.fatal({ event: 'workers_crashing', code: 'MOAT_ERR_WORKER', crashes: this.crashes.length, windowMs: CRASH_WINDOW_MS }, `workers crashed ${this.crashes.length} times in ${CRASH_WINDOW_MS / 1000}s: giving up`)
      this.exitCode = 1
      void this.stop()
      return
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.crashes.length - 1))
    this.logger.info({ event: 'worker_restart', worker: slot.id, inMs: delay }, `restarting worker ${slot.id} in ${delay}ms`)
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null
      if (this.stopping) return
      this.restarts += 1
      this.fork(slot)
    }, delay)
  }

  private allEnded(): Promise<void> {
    if (this.slots.every((s) => s.worker === null)) {
      this.finishStop()
      return Promise.resolve()
    }
    return new Promise((resolve) => this.ended.push(resolve))
  }

  private checkAllEnded(): void {
    if (!this.slots.every((s) => s.worker === null)) return
    const waiters = this.ended
    this.ended = []
    this.finishStop()
    for (const wake of waiters) wake()
  }

  private finishStop(): void {
    if (this.killTimer !== null) clearTimeout(this.killTimer)
    this.killTimer = null
    this.host.close()
    this.leases?.close()
    this.tickets.close()
    // The directory's entries go first, over the store's connection.
    const left = this.directory?.close() ?? Promise.resolve()
    if (this.banStore !== this.host.store) void left.then(() => this.banStore.close())
    void this.admin?.close()
    this.finish(this.exitCode)
  }

  private killAll(): void {
    for (const slot of this.slots) {
      if (slot.worker === null) continue
      this.logger.error({ event: 'worker_kill', worker: slot.id }, `worker ${slot.id} did not end after the grace period: killing it`)
      this.exitCode = 1
      slot.worker.process.kill('SIGKILL')
    }
  }

  private send(worker: Worker, message: PrimaryMessage): void {
    post(worker as unknown as Channel, message)
  }
}

function knownCode(code: string | null): MoatErrorCode {
  return code !== null && code in errorCodes ? code as MoatErrorCode : 'MOAT_ERR_WORKER'
}
