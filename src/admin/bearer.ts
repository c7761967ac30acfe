/**
 * The admin endpoint's bearer token, shared by the ban API (`/bans`) and the sessions view
 * (`/sessions`): `Authorization: Bearer <admin.token>`, compared in constant time (as sha256
 * digests, so the lengths tell nothing either). Without a configured token both are disabled
 * (403), so an admin endpoint left open for /metrics never lets anyone ban or kick.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AdminConfig } from '../config/types.js'
import { MoatError } from '../errors.js'

export class HttpError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.status = status
  }
}

function digest(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest()
}

/** The token of `admin.token` or `admin.tokenFile`; null when neither is set. */
export function adminToken(config: AdminConfig | null): string | null {
  if (config === null) return null
  if (config.token !== undefined && config.token !== null) return config.token
  if (config.tokenFile === undefined || config.tokenFile === null) return null
  let token: string
  try {
    token = readFileSync(config.tokenFile, 'utf8').trim()
  } catch (err) {
    throw new MoatError('MOAT_ERR_CLUSTER', `admin.tokenFile: cannot read ${config.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (token.length < 16) throw new MoatError('MOAT_ERR_CLUSTER', `admin.tokenFile: ${config.tokenFile} holds fewer than 16 characters`)
  return token
}

export class BearerCheck {
  /** sha256 of the token; null: the APIs behind it are disabled. */
  private readonly tokenDigest: Buffer | null

  constructor(token: string | null) {
    this.tokenDigest = token === null ? null : digest(token)
  }

  get enabled(): boolean {
    return this.tokenDigest !== null
  }

  /** Throws 403 when no token is configured (`api` names what is disabled), 401 when the request's is not it. */
  authorize(req: IncomingMessage, api: string): void {
    if (this.tokenDigest === null) throw new HttpError(403, `${api} is disabled: set admin.token or admin.tokenFile in the config`)
    const header = req.headers.authorization ?? ''
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    if (match === null || !timingSafeEqual(digest(match[1]!), this.tokenDigest)) throw new HttpError(401, 'a valid Authorization: Bearer token is required')
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n')
}

/** An error as JSON `{error}`; anything but an HttpError is a 500 that says nothing of its cause. */
export function sendError(res: ServerResponse, err: unknown): void {
  const status = err instanceof HttpError ? err.status : 500
  const message = err instanceof HttpError ? err.message : 'internal error'
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (status === 401) headers['www-authenticate'] = 'Bearer'
  res.writeHead(status, headers).end(JSON.stringify({ error: message }) + '\n')
}
