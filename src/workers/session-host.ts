/**
 * The sessions view of `workers: N`: the primary serves `/sessions`, the sessions live in the
 * workers. Each ask goes to every serving worker over IPC; their pages are merged here. A worker
 * that does not answer within ASK_TIMEOUT_MS is reported (`missing`), never silently left out.
 */
import type { SessionSource } from '../admin/sessions-api.js'
import type { InstanceStatus } from '../admin/fleet-fanout.js'
import { merge, parseSessionQuery, type SessionPage, type SessionParams } from '../admin/session-query.js'
import type { RowStamp, SessionRow } from '../session/session-row.js'
import { post, type Channel, type PrimaryMessage, type WorkerMessage } from './messages.js'

const ASK_TIMEOUT_MS = 2000

export interface ServingWorker {
  readonly id: number
  readonly channel: Channel
}

interface Ask {
  /** Workers asked that have not answered: reported missing unless they answer in time. */
  readonly waiting: Set<number>
  /** Workers that ended before answering (also missing, but not waited for). */
  readonly lost: Set<number>
  readonly answers: Array<SessionPage | SessionRow[]>
  readonly finish: () => void
}

export class WorkerSessions implements SessionSource {
  private readonly serving: () => ServingWorker[]
  private readonly asks = new Map<number, Ask>()
  private ids = 0

  constructor(serving: () => ServingWorker[]) {
    this.serving = serving
  }

  async page(params: SessionParams, stamp: RowStamp): Promise<{ page: SessionPage; missing: InstanceStatus[] }> {
    const q = parseSessionQuery(params)
    const { answers, missing } = await this.askAll((id) => ({ moat: 'sessions', id, params, instance: stamp.instance ?? null }), stamp)
    const merged = merge(answers as SessionPage[], q.limit)
    return { page: { rows: merged.rows, more: merged.next !== null }, missing }
  }

  async kick(clientId: string, stamp: RowStamp): Promise<{ rows: SessionRow[]; missing: InstanceStatus[] }> {
    const { answers, missing } = await this.askAll((id) => ({ moat: 'kick', id, clientId, instance: stamp.instance ?? null }), stamp)
    return { rows: (answers as SessionRow[][]).flat(), missing }
  }

  /** A worker's answer; false when `m` is not one. */
  receive(worker: number, m: WorkerMessage): boolean {
    if (m.moat !== 'sessions' && m.moat !== 'kicked') return false
    const ask = this.asks.get(m.id)
    if (ask === undefined || !ask.waiting.delete(worker)) return true
    ask.answers.push(m.moat === 'sessions' ? m.page : m.rows)
    if (ask.waiting.size === 0) ask.finish()
    return true
  }

  /** A worker ended: asks stop waiting for it (it is reported missing). */
  gone(worker: number): void {
    for (const ask of this.asks.values()) {
      if (!ask.waiting.delete(worker)) continue
      ask.lost.add(worker)
      if (ask.waiting.size === 0) ask.finish()
    }
  }

  private askAll(message: (id: number) => PrimaryMessage, stamp: RowStamp): Promise<{ answers: Array<SessionPage | SessionRow[]>; missing: InstanceStatus[] }> {
    const live = this.serving()
    const id = ++this.ids
    return new Promise((resolve) => {
      const ask: Ask = {
        waiting: new Set(live.map((w) => w.id)),
        lost: new Set(),
        answers: [],
        finish: () => {
          clearTimeout(timer)
          this.asks.delete(id)
          const missing = [...ask.waiting, ...ask.lost].sort((a, b) => a - b).map((w) => ({ instance: stamp.instance ?? null, worker: w, ok: false, error: `worker ${w} did not answer` }))
          resolve({ answers: ask.answers, missing })
        },
      }
      const timer = setTimeout(ask.finish, ASK_TIMEOUT_MS)
      this.asks.set(id, ask)
      if (live.length === 0) ask.finish()
      for (const w of live) {
        if (post(w.channel, message(id))) continue
        ask.waiting.delete(w.id) // its channel is closed: it cannot answer
        ask.lost.add(w.id)
      }
      if (live.length > 0 && ask.waiting.size === 0) ask.finish()
    })
  }
}
