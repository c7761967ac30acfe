/**
 * The sessions view of one process's sessions (a Moat, or one worker of `workers: N`): a page of
 * rows, and the kick. Only the sessions an operator asks about become rows: the filters are
 * checked on the session's identity first.
 */
import type { Session } from '../session/session.js'
import { listed, sessionRow, type RowStamp, type SessionRow } from '../session/session-row.js'
import { matchesIdentity, page, parseSessionQuery, type SessionPage, type SessionParams } from './session-query.js'

export function localPage(sessions: Iterable<Session>, params: SessionParams, stamp: RowStamp): SessionPage {
  const q = parseSessionQuery(params)
  const rows: SessionRow[] = []
  for (const session of sessions) {
    const s = session.state
    if (listed(session) && matchesIdentity(q, s.clientId, s.username, s.remoteAddress)) rows.push(sessionRow(session, stamp))
  }
  return page(rows, q)
}

/** Kicks every listed session of `clientId` (a broker allows one, but a takeover may briefly show two); their rows as they were. */
export function kickLocal(sessions: Iterable<Session>, clientId: string, stamp: RowStamp): SessionRow[] {
  const found: Session[] = []
  for (const session of sessions) if (listed(session) && session.state.clientId === clientId) found.push(session)
  const rows = found.map((s) => sessionRow(s, stamp))
  for (const session of found) session.kick()
  return rows
}
