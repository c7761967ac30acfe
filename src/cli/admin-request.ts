/**
 * What `moat ban` and `moat sessions` share: the admin endpoint and token they are given, checked
 * before anything is sent, and one bearer-authenticated request to it whose failure to connect is
 * reported as the command's own error (never with the token).
 */
import type { MoatError } from '../errors.js'

/** Usage errors for `--admin` and the token, named as the user typed them. */
export function checkAdminTarget(admin: string, token: string | null, usage: (message: string) => Error): void {
  try {
    const url = new URL(admin)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http')
  } catch {
    throw usage(`--admin must be the admin endpoint's URL, like http://127.0.0.1:9464, got '${admin}'`)
  }
  if (token === null) throw usage('a token is required: --token TOKEN or the MOAT_ADMIN_TOKEN environment variable')
}

export interface AdminAnswer {
  readonly status: number
  /** The body as sent (printed as is by --json). */
  readonly text: string
  /** The body parsed; empty when it was not JSON. */
  readonly answer: Record<string, unknown>
}

export interface AdminRequest {
  readonly admin: string
  readonly token: string
  readonly method: string
  /** Path and query, from the endpoint's root. */
  readonly path: string
  readonly body?: Record<string, string>
  readonly timeoutMs: number
  /** The command's error (MOAT_ERR_BAN, MOAT_ERR_SESSIONS) for an endpoint that cannot be reached. */
  readonly error: (message: string) => MoatError
}

/** The endpoint without trailing slashes: how errors name it. */
export function adminBase(admin: string): string {
  return admin.replace(/\/+$/, '')
}

export async function adminRequest(req: AdminRequest): Promise<AdminAnswer> {
  const base = adminBase(req.admin)
  const headers: Record<string, string> = { authorization: `Bearer ${req.token}` }
  if (req.body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(base + req.path, {
      method: req.method,
      headers,
      ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
      signal: AbortSignal.timeout(req.timeoutMs),
    })
  } catch (err) {
    const inner = (err as { cause?: { code?: string; message?: string } }).cause
    throw req.error(`cannot reach the admin endpoint at ${base}: ${inner?.code ?? inner?.message ?? (err as Error).message}`)
  }
  const text = await res.text()
  let answer: Record<string, unknown> = {}
  try {
    answer = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON: the caller reports the status
  }
  return { status: res.status, text, answer }
}

/** An answer that is not a success: the endpoint's own error text, else the HTTP status. */
export function adminFailure(admin: string, a: AdminAnswer, error: (message: string) => MoatError): MoatError {
  return error(`${adminBase(admin)}: ${typeof a.answer.error === 'string' ? a.answer.error : `HTTP ${a.status}`}`)
}
