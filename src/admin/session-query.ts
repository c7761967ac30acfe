/**
 * The filters and paging of the sessions view (`GET /sessions`), applied where the sessions live
 * (a Moat, each worker) and again where pages meet (the primary, the instance that fans out).
 * Order: client id, then instance, worker, address, port: stable across pages and instances. A
 * cursor is the sort key of the last row of a page (keyset paging): the next page is every row
 * after it, so sessions that come and go between two pages shift nothing.
 */
import type { BlockList } from 'node:net'
import { addressList, inAddressList } from '../net/address-list.js'
import type { SessionRow } from '../session/session-row.js'

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000
/** Longer filter values match no session anyway (the client id of a CONNECT is capped by the broker). */
const MAX_VALUE = 65_535

/** The query as it crosses the IPC channel and the fan-out: strings, checked by parseSessionQuery. */
export interface SessionParams {
  readonly user?: string
  readonly clientId?: string
  readonly address?: string
  readonly limit?: string
  readonly cursor?: string
}

export interface SessionQuery {
  readonly user: string | null
  readonly clientId: string | null
  readonly address: BlockList | null
  readonly limit: number
  readonly after: SortKey | null
}

type SortKey = readonly [clientId: string, instance: string, worker: number, address: string, port: number]

/** One node's page: `more` when it held more matching rows than it returned. */
export interface SessionPage {
  readonly rows: SessionRow[]
  readonly more: boolean
}

export class QueryError extends Error {}

/** The query's params, read from a URL's search params (unknown keys are refused: a typo would list everything). */
export function sessionParams(search: URLSearchParams, allowed: readonly string[] = []): SessionParams {
  const out: Record<string, string> = {}
  for (const [key, value] of search) {
    if (allowed.includes(key)) continue
    if (key !== 'user' && key !== 'clientId' && key !== 'address' && key !== 'limit' && key !== 'cursor') throw new QueryError(`unknown parameter '${key}' (user, clientId, address, limit, cursor)`)
    if (key in out) throw new QueryError(`'${key}' given twice`)
    if (value.length > MAX_VALUE) throw new QueryError(`'${key}' too long`)
    out[key] = value
  }
  return out
}

export function parseSessionQuery(p: SessionParams): SessionQuery {
  let address: BlockList | null = null
  if (p.address !== undefined) {
    try {
      address = addressList([p.address])
    } catch {
      throw new QueryError(`address: expected an IP address or a CIDR, got '${p.address.slice(0, 100)}'`)
    }
  }
  let limit = DEFAULT_LIMIT
  if (p.limit !== undefined) {
    limit = Number(p.limit)
    if (!/^\d+$/.test(p.limit) || limit < 1 || limit > MAX_LIMIT) throw new QueryError(`limit: a whole number from 1 to ${MAX_LIMIT}`)
  }
  return { user: p.user ?? null, clientId: p.clientId ?? null, address, limit, after: p.cursor === undefined ? null : readCursor(p.cursor) }
}

function readCursor(cursor: string): SortKey {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown
    if (Array.isArray(key) && key.length === 5 && typeof key[0] === 'string' && typeof key[1] === 'string' && Number.isInteger(key[2])
      && typeof key[3] === 'string' && Number.isInteger(key[4])) return key as unknown as SortKey
  } catch {
    // reported below
  }
  throw new QueryError('cursor: not a cursor this endpoint gave (pass the `next` of the previous page as it is)')
}

function sortKey(row: SessionRow): SortKey {
  return [row.clientId, row.instance ?? '', row.worker ?? 0, row.address, row.port]
}

export function cursorOf(row: SessionRow): string {
  return Buffer.from(JSON.stringify(sortKey(row)), 'utf8').toString('base64url')
}

function compareKeys(a: SortKey, b: SortKey): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!
    const y = b[i]!
    if (x !== y) return x < y ? -1 : 1
  }
  return 0
}

export function compareRows(a: SessionRow, b: SessionRow): number {
  return compareKeys(sortKey(a), sortKey(b))
}

/** Whether a session of this identity matches the filters (checked before its row is made). */
export function matchesIdentity(q: SessionQuery, clientId: string, username: string | null, address: string): boolean {
  if (q.clientId !== null && clientId !== q.clientId) return false
  if (q.user !== null && username !== q.user) return false
  return q.address === null || inAddressList(q.address, address)
}

/** The first `limit` rows after the cursor, in order, out of one node's matching rows. */
export function page(rows: SessionRow[], q: SessionQuery): SessionPage {
  const after = q.after
  const kept = after === null ? rows : rows.filter((r) => compareKeys(sortKey(r), after) > 0)
  kept.sort(compareRows)
  return { rows: kept.slice(0, q.limit), more: kept.length > q.limit }
}

/** Pages of several nodes (each already in order, after the same cursor) as one, with the cursor of the next. */
export function merge(pages: readonly SessionPage[], limit: number): { rows: SessionRow[]; next: string | null } {
  const all = pages.flatMap((p) => p.rows).sort(compareRows)
  const rows = all.slice(0, limit)
  const more = all.length > limit || pages.some((p) => p.more)
  return { rows, next: more && rows.length > 0 ? cursorOf(rows[rows.length - 1]!) : null }
}
