/**
 * The ban API of the admin endpoint, `/bans` (what `moat ban` talks to):
 *   GET    /bans                          the bans in force (JSON)
 *   POST   /bans   {target, for?, reason?} add or replace a ban (target: address, CIDR, user:NAME, client:ID)
 *   DELETE /bans?target=TARGET            remove it
 * Every call needs `Authorization: Bearer <admin.token>` (admin/bearer.ts); without a configured
 * token the API is disabled (403). Bodies are capped at 4 KiB.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { banTarget, parseBanTarget } from '../fleet/ban-list.js'
import type { Ban, SharedStore } from '../fleet/shared-store.js'
import { parseDuration } from '../config/units.js'
import type { Logger } from '../log/logger.js'
import { HttpError, sendError, sendJson, type BearerCheck } from './bearer.js'

const MAX_BODY = 4096
const MAX_REASON = 200

export function banJson(ban: Ban): Record<string, unknown> {
  return { target: banTarget(ban), kind: ban.kind, value: ban.value, until: ban.until === null ? null : new Date(ban.until).toISOString(), reason: ban.reason, source: ban.source, createdAt: new Date(ban.createdAt).toISOString() }
}

export class BanApi {
  private readonly store: SharedStore
  private readonly logger: Logger
  private readonly bearer: BearerCheck

  constructor(store: SharedStore, bearer: BearerCheck, logger: Logger) {
    this.store = store
    this.logger = logger
    this.bearer = bearer
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.bearer.authorize(req, 'the ban API')
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
      sendJson(res, status, body)
    } catch (err) {
      sendError(res, err)
    }
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
