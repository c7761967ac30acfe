/**
 * A cluster worker (`workers: N`): one Moat whose listeners share their ports with the other
 * workers (node:cluster hands each accepted connection to one worker), with no admin endpoint of
 * its own, and a WorkerStore and a WorkerLeaseTransport for the fleet-wide limits and per-user rates. The primary tells it what to do:
 *   start (the config text the primary validated), reload, shutdown (drain), metrics (answer a
 *   scrape), reopen-log (after a rotation: the primary got SIGHUP or SIGUSR2), ticket-seed (the
 *   session-ticket seed of a TLS listener, shared by every worker), sessions and kick (the sessions
 *   view of the primary's admin endpoint: a page of this worker's sessions, a kick).
 * Its log lines carry `worker: <n>` (1..N, kept by a restarted worker). With `log.file`, each
 * worker appends to the file through its own descriptor (log/output.ts).
 */
import { parseConfig } from '../config/load.js'
import { MoatError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { openLog, type LogOutput } from '../log/output.js'
import { onLogSignals, reopenLog } from '../log/signals.js'
import { Moat } from '../moat.js'
import { isMessage, post, type Channel, type PrimaryMessage, type WorkerMessage } from './messages.js'
import { WorkerStore } from './worker-store.js'
import type { SessionPage } from '../admin/session-query.js'
import { RedisStore } from '../fleet/redis-store.js'
import type { RowStamp } from '../session/session-row.js'
import { WorkerTicketSeeds } from './worker-ticket-seeds.js'
import { WorkerLeaseTransport } from './worker-budget-leases.js'

const channel: Channel = {
  send: (message, callback) => process.send!(message, undefined, {}, callback),
  on: (event, listener) => process.on(event, listener),
  off: (event, listener) => process.off(event, listener),
}

function send(message: WorkerMessage): void {
  post(channel, message)
}

function stampOf(instance: string | null, worker: number): RowStamp {
  return instance === null ? { worker } : { instance, worker }
}

/** Runs this process as worker `id`; returns once it is serving (the process then lives on its handles). */
export async function runWorker(id: number): Promise<void> {
  let moat: Moat | null = null
  let logger: Logger | null = null
  let log: LogOutput | null = null
  let stopping: Promise<void> | null = null
  const ticketSeeds = new WorkerTicketSeeds()
  const stop = (graceMs: number): void => {
    if (moat === null) {
      process.exit(0) // told to stop before it served anything
    }
    const drain = moat.shutdown(graceMs) // a second call with 0 closes the rest at once
    if (stopping !== null) return
    stopping = drain.then(() => { // Moat.shutdown closed its store too
      logger!.info({ event: 'worker_stopped' }, 'worker drained')
      logger!.flush(() => process.exit(0)) // what a lagging reader of standard output has not taken yet: out first
    }, (err: unknown) => {
      logger!.error({ err }, 'worker shutdown failed')
      logger!.flush(() => process.exit(1))
    })
  }
  const started = new Promise<{ file: string; text: string }>((resolve) => {
    process.on('message', (message: unknown) => {
      if (!isMessage(message)) return
      const m = message as PrimaryMessage
      switch (m.moat) {
        case 'start':
          resolve({ file: m.file, text: m.text })
          return
        case 'shutdown':
          stop(m.graceMs)
          return
        case 'reload': {
          if (moat === null) return
          const ok = moat.reload()
          send({ moat: 'reloaded', ok, generation: moat.policy.generation })
          return
        }
        case 'ticket-seed':
          ticketSeeds.receive(m.listener, m.seed)
          return
        case 'reopen-log':
          if (log !== null) reopenLog(log.reopen, logger!, 'primary')
          return
        case 'sessions': {
          // A query the primary validated; a page that still cannot be made answers empty rather than never.
          let page: SessionPage = { rows: [], more: false }
          if (moat !== null) {
            try {
              page = moat.sessionPage(m.params, stampOf(m.instance, id))
            } catch { /* answered empty */ }
          }
          send({ moat: 'sessions', id: m.id, page })
          return
        }
        case 'kick':
          send({ moat: 'kicked', id: m.id, rows: moat === null ? [] : moat.kickSessions(m.clientId, stampOf(m.instance, id)) })
          return
        case 'metrics':
          if (moat === null) return
          moat.registry.getMetricsAsJSON().then((metrics) => send({ moat: 'metrics', id: m.id, metrics }), () => send({ moat: 'metrics', id: m.id, metrics: [] }))
          return
        default:
      }
    })
    send({ moat: 'hello' }) // listening now: the start message cannot be missed
  })
  // A terminal's Ctrl-C (or hang-up) reaches every process of the group: the primary coordinates
  // the drain and the reload, so neither signal may end a worker on its own.
  process.on('SIGINT', () => {})
  process.on('SIGHUP', () => {})
  // SIGTERM sent to this worker alone (or to the whole group by a service manager): drain.
  process.on('SIGTERM', () => stop(moat?.config.shutdown.gracePeriodMs ?? 0))
  // The primary is gone: nobody will restart, reload or scrape this worker; drain and leave.
  process.on('disconnect', () => stop(moat?.config.shutdown.gracePeriodMs ?? 0))

  const { file, text } = await started
  try {
    const config = parseConfig(text, file)
    log = await openLog(config.log, file)
    logger = log.logger.child({ worker: id })
    // SIGUSR2 sent to every process of the service (systemctl kill) reaches the workers too.
    onLogSignals(log.reopen, logger)
    // With cluster.redis every worker talks to Redis itself (fleet-wide across instances, and so
    // across workers); without it the primary holds the state for all its workers.
    const store = config.cluster?.redis != null ? undefined : new WorkerStore({ channel, logger })
    // Per-user rates likewise: leased from Redis, or from the primary's fleet buckets.
    const leaseTransport = config.cluster?.redis != null ? undefined : new WorkerLeaseTransport(channel)
    const candidate = new Moat(config, { logger, store, admin: false, ticketSeeds, leaseTransport })
    await candidate.start()
    moat = candidate
  } catch (err) {
    const fatal: WorkerMessage = { moat: 'fatal', message: (err as Error).message, code: err instanceof MoatError ? err.code : null }
    process.send!(fatal, undefined, {}, () => process.exit(1)) // exit once the primary has the reason
    return
  }
  // The primary names this worker in the fleet's directory (its store's heartbeat is its own).
  const instance = moat.store instanceof RedisStore ? moat.store.instanceId : null
  send({ moat: 'ready', listeners: moat.config.listeners.map((l) => ({ name: l.name, ...moat!.address(l.name) })), store: moat.store.kind, instance })
}
