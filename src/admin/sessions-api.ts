/**
 * The sessions view of the admin endpoint (what `moat sessions` talks to):
 *   GET    /sessions[?user=&clientId=&address=&limit=&cursor=&scope=]  the sessions, a page at a time
 *   DELETE /sessions/{clientId}[?scope=]                              kick that client
 * Behind the ban API's bearer token (admin/bearer.ts). `scope=fleet` (the default) also asks every
 * other instance the fleet's directory lists (admin/fleet-fanout.ts), which each answer with
 * `scope=local`; every row names its instance, and every instance that could not be asked or did
 * not answer is listed under `instances` with why. A row holds no secret (session/session-row.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../log/logger.js'
import type { RowStamp, SessionRow } from '../session/session-row.js'
import { HttpError, sendError, sendJson, type BearerCheck } from './bearer.js'
import type { FleetFanout, InstanceStatus, Peer, PeerAnswer } from './fleet-fanout.js'
import { merge, parseSessionQuery, QueryError, sessionParams, type SessionPage, type SessionParams } from './session-query.js'

/** Where the sessions are: a Moat's own, or the workers of `workers: N` (those that did not answer in `missing`). */
export interface SessionSource {
  page(params: SessionParams, stamp: RowStamp): Promise<{ page: SessionPage; missing: InstanceStatus[] }>
  kick(clientId: string, stamp: RowStamp): Promise<{ rows: SessionRow[]; missing: InstanceStatus[] }>
}

const SCOPES = ['fleet', 'local'] as const
type Scope = (typeof SCOPES)[number]

export class SessionsApi {
  private readonly source: SessionSource
  private readonly bearer: BearerCheck
  private readonly fanout: FleetFanout | null
  private readonly logger: Logger

  constructor(source: SessionSource, bearer: BearerCheck, fanout: FleetFanout | null, logger: Logger) {
    this.source = source
    this.bearer = bearer
    this.fanout = fanout
    this.logger = logger
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.bearer.authorize(req, 'the sessions API')
      const url = new URL(req.url ?? '/', 'http://admin')
      const scopeParam = url.searchParams.get('scope') ?? 'fleet'
      if (!(SCOPES as readonly string[]).includes(scopeParam)) throw new HttpError(400, "scope: 'fleet' or 'local'")
      const scope = scopeParam as Scope
      if (url.pathname === '/sessions') {
        if (req.method !== 'GET') {
          res.writeHead(405, { allow: 'GET' }).end()
          return
        }
        sendJson(res, 200, await this.list(url.searchParams, scope, req))
      } else {
        if (req.method !== 'DELETE') {
          res.writeHead(405, { allow: 'DELETE' }).end()
          return
        }
        const { status, body } = await this.kick(url, scope, req)
        sendJson(res, status, body)
      }
    } catch (err) {
      sendError(res, err instanceof QueryError ? new HttpError(400, err.message) : err)
    }
  }

  private stamp(): RowStamp {
    return this.fanout === null ? {} : { instance: this.fanout.self }
  }

  private async list(search: URLSearchParams, scope: Scope, req: IncomingMessage): Promise<Record<string, unknown>> {
    const params = sessionParams(search, ['scope'])
    const q = parseSessionQuery(params) // a bad query is refused before anything is asked
    const own = await this.source.page(params, this.stamp())
    const pages: SessionPage[] = [own.page]
    const instances: InstanceStatus[] = [{ instance: this.stamp().instance ?? null, ok: true }, ...own.missing]
    if (scope === 'fleet' && this.fanout !== null) {
      const local = new URLSearchParams(params as Record<string, string>)
      local.set('scope', 'local')
      await this.askPeers('GET', `/sessions?${local.toString()}`, req, instances, (peer, body) => {
        const rows = body.sessions
        if (!Array.isArray(rows) || !rows.every(isRow) || typeof body.more !== 'boolean') throw new Error('answered something other than a page of sessions')
        pages.push({ rows: rows as SessionRow[], more: body.more })
      })
    }
    const merged = merge(pages, q.limit)
    return { scope, sessions: merged.rows, next: merged.next, more: merged.next !== null, instances }
  }

  private async kick(url: URL, scope: Scope, req: IncomingMessage): Promise<{ status: number; body: Record<string, unknown> }> {
    let clientId: string
    try {
      clientId = decodeURIComponent(url.pathname.slice('/sessions/'.length))
    } catch {
      throw new HttpError(400, 'the client id in the path is not valid percent-encoding')
    }
    if (clientId === '') throw new HttpError(400, 'give the client id to kick: DELETE /sessions/{clientId}')
    for (const key of url.searchParams.keys()) if (key !== 'scope') throw new HttpError(400, `unknown parameter '${key}' (scope)`)
    const own = await this.source.kick(clientId, this.stamp())
    const who = requester(req)
    for (const row of own.rows) {
      this.logger.warn({ audit: true, event: 'session_kicked', clientId: row.clientId, username: row.username, remote: `${row.address}:${row.port}`, listener: row.listener, ...(row.worker === undefined ? {} : { worker: row.worker }), ...who }, 'session kicked through the admin API')
    }
    const kicked: SessionRow[] = [...own.rows]
    const instances: InstanceStatus[] = [{ instance: this.stamp().instance ?? null, ok: true }, ...own.missing]
    if (scope === 'fleet' && this.fanout !== null) {
      await this.askPeers('DELETE', `/sessions/${encodeURIComponent(clientId)}?scope=local`, req, instances, (peer, body) => {
        const rows = body.kicked
        if (!Array.isArray(rows) || !rows.every(isRow)) throw new Error('answered something other than the sessions it kicked')
        kicked.push(...(rows as SessionRow[]))
      }, [404])
    }
    if (kicked.length > 0) return { status: 200, body: { kicked, instances } }
    return { status: 404, body: { error: `no session of client id '${clientId.slice(0, 200)}'`, kicked, instances } }
  }

  /** Asks every other instance; `take` reads one's answer (a throw marks it failed). */
  private async askPeers(method: string, path: string, req: IncomingMessage, instances: InstanceStatus[],
    take: (peer: Peer, body: Record<string, unknown>) => void, alsoOk: readonly number[] = []): Promise<void> {
    let peers: { ask: Peer[]; unreachable: InstanceStatus[] }
    try {
      peers = await this.fanout!.peers()
    } catch {
      instances.push({ instance: null, ok: false, error: 'redis did not answer: the other instances of the fleet are unknown' })
      return
    }
    instances.push(...peers.unreachable)
    const answers: PeerAnswer[] = await this.fanout!.askAll(peers.ask, method, path, requester(req).by)
    answers.forEach((answer, i) => {
      const peer = peers.ask[i]!
      const failed = (error: string): void => { instances.push({ instance: peer.instance, url: peer.url, ok: false, error }) }
      if (!answer.ok) return failed(answer.error)
      if (answer.status !== 200 && !alsoOk.includes(answer.status)) {
        return failed(typeof answer.body.error === 'string' ? `HTTP ${answer.status}: ${answer.body.error.slice(0, 200)}` : `HTTP ${answer.status}`)
      }
      try {
        take(peer, answer.body)
      } catch (err) {
        return failed((err as Error).message)
      }
      instances.push({ instance: peer.instance, url: peer.url, ok: true })
      // Its own workers that did not answer.
      const theirs = answer.body.instances
      if (Array.isArray(theirs)) for (const s of theirs) if (isFailedStatus(s)) instances.push({ instance: peer.instance, url: peer.url, worker: s.worker, ok: false, error: s.error })
    })
  }
}

/** Who asked, for the audit line: the caller's address, and the instance that passed the request on. */
function requester(req: IncomingMessage): { by: string; via?: string } {
  const forwarded = header(req, 'x-moat-requested-by')
  const via = header(req, 'x-moat-via')
  const by = forwarded !== null && via !== null ? forwarded : req.socket.remoteAddress ?? 'unknown'
  return via === null ? { by } : { by, via }
}

function header(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name]
  return typeof value === 'string' && value.length <= 200 && /^[\x21-\x7e]+$/.test(value) ? value : null
}

function isRow(x: unknown): boolean {
  if (x === null || typeof x !== 'object') return false
  const r = x as Record<string, unknown>
  return typeof r.clientId === 'string' && typeof r.address === 'string' && typeof r.port === 'number' && (r.instance === undefined || typeof r.instance === 'string')
    && (r.worker === undefined || typeof r.worker === 'number')
}

function isFailedStatus(x: unknown): x is { worker: number; error: string } {
  if (x === null || typeof x !== 'object') return false
  const s = x as Record<string, unknown>
  return s.ok === false && typeof s.worker === 'number' && typeof s.error === 'string'
}
