/**
 * `moat sessions list|kick`: the sessions view of one instance's admin endpoint (`/sessions`,
 * admin/sessions-api.ts), which with `cluster.redis` asks every other instance of the fleet too.
 * Exit 0; 3 when some instance (or worker) did not answer: what the others hold is still printed,
 * and every one missing is named on stderr.
 */
import { MoatError } from '../errors.js'
import { MAX_LIMIT } from '../admin/session-query.js'
import { adminFailure, adminRequest, checkAdminTarget, type AdminAnswer } from './admin-request.js'

export interface SessionsCommand {
  readonly action: 'list' | 'kick'
  /** The client id to kick. */
  readonly clientId: string | null
  readonly admin: string
  readonly token: string | null
  readonly user: string | null
  readonly filterClientId: string | null
  readonly address: string | null
  readonly limit: number | null
  readonly cursor: string | null
  /** Every page, following the cursors. */
  readonly all: boolean
  /** This instance only (scope=local). */
  readonly local: boolean
  readonly json: boolean
}

/** The exit code when some instance did not answer. */
export const PARTIAL = 3

class SessionsError extends MoatError {
  constructor(message: string) {
    super('MOAT_ERR_SESSIONS', message)
  }
}

export function checkSessionsArgs(cmd: SessionsCommand, usage: (message: string) => Error): void {
  if (cmd.action === 'kick') {
    if (cmd.clientId === null || cmd.clientId === '') throw usage("'moat sessions kick' needs the CLIENT_ID to kick")
    const listOnly = [['--user', cmd.user], ['--client-id', cmd.filterClientId], ['--address', cmd.address], ['--limit', cmd.limit], ['--cursor', cmd.cursor]].find(([, v]) => v !== null)
    if (listOnly !== undefined) throw usage(`${listOnly[0]} goes with 'moat sessions list'`)
    if (cmd.all) throw usage("--all goes with 'moat sessions list'")
  } else if (cmd.clientId !== null) {
    throw usage(`unexpected argument '${cmd.clientId}' (filter with --client-id ID)`)
  }
  if (cmd.all && cmd.cursor !== null) throw usage('--all starts at the first page: give --all or --cursor, not both')
  if (cmd.limit !== null && (!Number.isInteger(cmd.limit) || cmd.limit < 1 || cmd.limit > MAX_LIMIT)) throw usage(`--limit must be a whole number from 1 to ${MAX_LIMIT}`)
  checkAdminTarget(cmd.admin, cmd.token, usage)
}

interface Row {
  clientId: string
  username: string | null
  address: string
  port: number
  protocol: string
  state: string
  connectedSince: string
  instance?: string
  worker?: number
}

interface Status { instance: string | null; url?: string | null; worker?: number; ok: boolean; error?: string }

const sessionsError = (message: string): MoatError => new SessionsError(message)

function call(cmd: SessionsCommand, method: string, path: string): Promise<AdminAnswer> {
  return adminRequest({ admin: cmd.admin, token: cmd.token!, method, path, timeoutMs: 30_000, error: sessionsError })
}

function where(s: { instance?: string | null; worker?: number }): string {
  const instance = s.instance ?? 'this instance'
  return s.worker === undefined ? instance : `${instance} worker ${s.worker}`
}

/** Writes the instances that did not answer to `err`; whether there was one. */
function reportMissing(instances: unknown, err: NodeJS.WritableStream): boolean {
  const failed = (Array.isArray(instances) ? instances as Status[] : []).filter((s) => s.ok === false)
  for (const s of failed) err.write(`moat: not answered: ${where(s)}${s.url == null ? '' : ` (${s.url})`}: ${s.error ?? 'no answer'}\n`)
  return failed.length > 0
}

function line(r: Row): string {
  return [r.clientId, r.username ?? '-', `${r.address}:${r.port}`, r.protocol, r.state, r.connectedSince, where(r)].join('\t')
}

export async function runSessionsCommand(cmd: SessionsCommand, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const scope = cmd.local ? 'local' : 'fleet'
  if (cmd.action === 'kick') {
    const reply = await call(cmd, 'DELETE', `/sessions/${encodeURIComponent(cmd.clientId!)}?scope=${scope}`)
    const { status, text, answer } = reply
    if (status !== 200 && status !== 404) throw adminFailure(cmd.admin, reply, sessionsError)
    const missing = reportMissing(answer.instances, err)
    if (status === 404) throw new SessionsError(`no session of client id '${cmd.clientId!}'${missing ? ' on the instances that answered' : ''}`)
    if (cmd.json) out.write(text)
    else for (const r of (answer.kicked as Row[] | undefined) ?? []) out.write(`kicked ${r.clientId} (${r.username ?? 'anonymous'}, ${r.address}:${r.port}) on ${where(r)}\n`)
    return missing ? PARTIAL : 0
  }
  const query = new URLSearchParams({ scope })
  if (cmd.user !== null) query.set('user', cmd.user)
  if (cmd.filterClientId !== null) query.set('clientId', cmd.filterClientId)
  if (cmd.address !== null) query.set('address', cmd.address)
  if (cmd.limit !== null) query.set('limit', String(cmd.limit))
  let cursor = cmd.cursor
  let missing = false
  let listed = 0
  for (;;) {
    if (cursor !== null) query.set('cursor', cursor)
    const reply = await call(cmd, 'GET', `/sessions?${query.toString()}`)
    const { text, answer } = reply
    if (reply.status !== 200) throw adminFailure(cmd.admin, reply, sessionsError)
    missing = reportMissing(answer.instances, err) || missing
    const rows = (answer.sessions as Row[] | undefined) ?? []
    listed += rows.length
    if (cmd.json) out.write(text)
    else for (const r of rows) out.write(line(r) + '\n')
    const next = typeof answer.next === 'string' ? answer.next : null
    if (next === null) break
    if (!cmd.all) {
      err.write(`moat: more sessions: --cursor ${next} (or --all)\n`)
      break
    }
    cursor = next
  }
  if (!cmd.json && listed === 0) out.write('no sessions\n')
  return missing ? PARTIAL : 0
}
