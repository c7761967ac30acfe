/**
 * The ban API of the admin endpoint, `/bans` (what `moat ban` talks to):
 *   GET    /bans                          the bans in force (JSON)
 *   POST   /bans   {target, for?, reason?} add or replace a ban (target: address, CIDR, user:NAME, client:ID)
 *   DELETE /bans?target=TARGET            remove it
 * Every call needs `Authorization: Bearer <admin.token>` (compared in constant time). Without a
 * configured token the API is disabled (403), so an admin endpoint left unauthenticated for
 * /metrics never lets anyone ban. Bodies are capped at 4 KiB.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { banTarget, parseBanTarget } from '../fleet/ban-list.js'
import type { Ban, SharedStore } from '../fleet/shared-store.js'
import type { AdminConfig } from '../config/types.js'
import { parseDuration } from '../config/units.js'
import { MoatError } from '../errors.js'
import type { Logger } from '../log/logger.js'

const MAX_BODY = 4096
const MAX_REASON = 200

class HttpError extends Error {
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

export function banJson(ban: Ban): Record<string, unknown> {
  return { target: banTarget(ban), kind: ban.kind, value: ban.value, until: ban.until === null ? null : new Date(ban.until).toISOString(), reason: ban.reason, source: ban.source, createdAt: new Date(ban.createdAt).toISOString() }
}

export class BanApi {
  private readonly store: SharedStore
  private readonly logger: Logger
  /** sha256 of the token (so the comparison is constant-time whatever the lengths); null: API disabled. */
  private readonly tokenDigest: Buffer | null

  constructor(store: SharedStore, config: AdminConfig | null, logger: Logger) {
    this.store = store
    this.logger = logger
    const token = adminToken(config)
    this.tokenDigest = token === null ? null : digest(token)
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.authorize(req)
      const url = new URL(req.url ?? '/', 'http://admin')
      let status = 200
      let body: unknown
      if (req.method === 'GET') {
        body = { bans: this.store.bans().map(banJson) }
      } else if (req.method === 'POST') {
        const ban = this.parseBan(await readBody(req))
        await this.storeCall(() => this.store.addBan(ban))
        this.logger.warn({ audit: true, event: 'ban_added', target: banTarget(ban), until: ban.until, reason: ban.reason }, 'ban added through the admin API')
        status = 201
        body = { ban: banJson(ban) }
      } else if (req.method === 'DELETE') {
        const target = url.searchParams.get('target')
        if (target === null) throw new HttpError(400, 'give the ban to remove as ?target=')
        const { kind, value } = this.parseTarget(target)
        const removed = await this.storeCall(() => this.store.removeBan(kind, value))
        if (!removed) throw new HttpError(404, `no ban on ${target}`)
        this.logger.warn({ audit: true, event: 'ban_removed', target }, 'ban removed through the admin API')
        body = { removed: target }
      } else {
        res.writeHead(405, { allow: 'GET, POST, DELETE' }).end()
        return
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n')
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500
      const message = err instanceof HttpError ? err.message : 'internal error'
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (status === 401) headers['www-authenticate'] = 'Bearer'
      res.writeHead(status, headers).end(JSON.stringify({ error: message }) + '\n')
    }
  }

  private authorize(req: IncomingMessage): void {
    if (this.tokenDigest === null) throw new HttpError(403, 'the ban API is disabled: set admin.token or admin.tokenFile in the config')
    const header = req.headers.authorization ?? ''
    const match = /^Bearer\s+(\S+)$/i.exec(header)
    if (match === null || !timingSafeEqual(digest(match[1]!), this.tokenDigest)) throw new HttpError(401, 'a valid Authorization: Bearer token is required')
  }

  private async storeCall<T>(run: () => Promise<T>): Promise<T> {
    if (!this.store.up) throw new HttpError(503, 'the shared store is unreachable: try again when it is back')
    try {
      return await run()
    } catch {
      throw new HttpError(503, 'the shared store did not answer: try again')
    }
  }

  private parseTarget(target: string): { kind: Ban['kind']; value: string } {
    if (target.length > 1024) throw new HttpError(400, 'target too long')
    try {
      return parseBanTarget(target)
    } catch (err) {
      throw new HttpError(400, (err as Error).message)
    }
  }

  private parseBan(body: string): Ban {
    let input: unknown
    try {
      input = JSON.parse(body)
    } catch {
      throw new HttpError(400, 'the body must be JSON: {"target": "...", "for": "1h", "reason": "..."}')
    }
    if (input === null || typeof input !== 'object') throw new HttpError(400, 'the body must be a JSON object')
    const { target, for: duration, reason, ...rest } = input as Record<string, unknown>
    const unknown = Object.keys(rest)
    if (unknown.length > 0) throw new HttpError(400, `unknown key '${unknown[0]}'`)
    if (typeof target !== 'string') throw new HttpError(400, 'target: expected an address, a CIDR, user:NAME or client:ID')
    const { kind, value } = this.parseTarget(target)
    let until: number | null = null
    const now = Date.now()
    if (duration !== undefined && duration !== null) {
      try {
        const ms = parseDuration(duration)
        if (ms <= 0) throw new Error('must be above zero')
        until = now + ms
      } catch (err) {
        throw new HttpError(400, `for: ${(err as Error).message}`)
      }
    }
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON || /[\u0000-\u001f]/.test(reason))) {
      throw new HttpError(400, `reason: at most ${MAX_REASON} printable characters`)
    }
    return { kind, value, until, reason: (reason as string | undefined) ?? '', createdAt: now, source: 'admin' }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY) {
      reject(new HttpError(413, `the body is capped at ${MAX_BODY} bytes`))
      req.resume()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY) {
        reject(new HttpError(413, `the body is capped at ${MAX_BODY} bytes`))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
