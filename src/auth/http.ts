/**
 * The `http` backend: one POST per CONNECT to an operator's service, through a pooled undici
 * client with explicit timeouts (undici's own default is 300 s) and a bounded queue.
 *
 * The contract (documented in docs/authentication.md, `http`):
 *   request   POST <url>, Content-Type: application/json
 *             { "username": string|null, "password": string|null, "passwordBase64"?: string,
 *               "clientId": string, "remoteAddress": string, "listener": string,
 *               "transport": "tcp"|"tls"|"ws"|"wss", "protocolVersion": 3|4|5,
 *               "certificate": { "subject", "cn", "sans", "fingerprint256" } | null }
 *             (`password` is the UTF-8 text of the password; a password that is not UTF-8 comes
 *             as `passwordBase64` instead.)
 *   answer    200 with JSON { "result": "allow" | "deny" | "ignore",
 *                             "username"?: string, "groups"?: string[],
 *                             "attributes"?: { [name]: string } }
 *             401 or 403 (any body): deny.
 *             Anything else (other status, a body that is not that JSON, over 64 KiB, no answer
 *             within `timeout`, connection refused): the backend is failing: the CONNECT is denied
 *             (fail closed), counted in moat_auth_backend_errors_total and logged once per interval.
 * Every response body is consumed or destroyed (undici README).
 */
import { isUtf8 } from 'node:buffer'
import { createRequire } from 'node:module'
import type { Pool } from 'undici'
import type { HttpBackendConfig } from '../config/types.js'
import { BackendError, DENY, NO_OPINION, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'

const MAX_BODY = 64 * 1024
const MAX_GROUPS = 256
const MAX_ATTRIBUTES = 64
const MAX_VALUE = 1024

// undici is loaded when an http backend is made, not at start: about 5 MB of heap that a Moat
// without one would carry, and mark at every full GC (GC pauses).
const load = createRequire(import.meta.url)

export class HttpBackend implements AuthBackend {
  readonly type = 'http'
  private readonly pool: Pool
  private readonly path: string
  private readonly headers: Record<string, string>
  private readonly timeoutMs: number
  private readonly maxInFlight: number
  private inFlight = 0

  constructor(config: HttpBackendConfig) {
    const url = new URL(config.url)
    const { Pool: UndiciPool } = load('undici') as typeof import('undici')
    this.pool = new UndiciPool(url.origin, {
      connections: config.connections,
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs,
      connectTimeout: config.timeoutMs,
      keepAliveTimeout: 30_000,
    })
    this.path = url.pathname + url.search
    this.headers = { ...config.headers, 'content-type': 'application/json' }
    this.timeoutMs = config.timeoutMs
    this.maxInFlight = config.connections + config.maxPending
  }

  async authenticate(req: AuthRequest, signal: AbortSignal): Promise<AuthResult> {
    if (this.inFlight >= this.maxInFlight) throw new BackendError('overloaded', `${this.inFlight} requests already waiting`)
    this.inFlight++
    try {
      return await this.call(req, AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]))
    } finally {
      this.inFlight--
    }
  }

  private async call(req: AuthRequest, signal: AbortSignal): Promise<AuthResult> {
    let response: Awaited<ReturnType<Pool['request']>>
    try {
      response = await this.pool.request({ path: this.path, method: 'POST', headers: this.headers, body: requestBody(req), signal })
    } catch (err) {
      throw transportError(err, signal)
    }
    const { statusCode, body } = response
    if (statusCode === 401 || statusCode === 403) {
      await body.dump().catch(() => undefined)
      return DENY
    }
    if (statusCode !== 200) {
      await body.dump().catch(() => undefined)
      throw new BackendError('bad_response', `status ${statusCode}`)
    }
    let text: string
    try {
      text = await readCapped(body)
    } catch (err) {
      if (err instanceof BackendError) throw err
      throw transportError(err, signal)
    }
    return parseAnswer(text)
  }

  cacheKey(req: AuthRequest): string {
    return JSON.stringify([
      req.username, req.password?.toString('base64') ?? null, req.clientId, req.remoteAddress, req.listener,
      req.transport, req.protocolVersion, req.certificate?.fingerprint256 ?? null,
    ])
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => undefined)
  }
}

function requestBody(req: AuthRequest): string {
  const password = req.password
  const utf8 = password === null || isUtf8(password)
  return JSON.stringify({
    username: req.username,
    password: password === null ? null : utf8 ? password.toString('utf8') : null,
    ...(utf8 ? {} : { passwordBase64: password!.toString('base64') }),
    clientId: req.clientId,
    remoteAddress: req.remoteAddress,
    listener: req.listener,
    transport: req.transport,
    protocolVersion: req.protocolVersion,
    certificate: req.certificate === null ? null : {
      subject: req.certificate.subject, cn: req.certificate.cn, sans: req.certificate.sans, fingerprint256: req.certificate.fingerprint256,
    },
  })
}

function transportError(err: unknown, signal: AbortSignal): BackendError {
  const code = (err as { code?: string }).code ?? ''
  if (signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new BackendError('timeout', 'no answer in time')
  }
  return new BackendError('unavailable', code || (err as Error).message)
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_BODY) {
      body.destroy()
      throw new BackendError('bad_response', 'answer larger than 64 KiB')
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function bad(why: string): BackendError {
  return new BackendError('bad_response', why)
}

function parseAnswer(text: string): AuthResult {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw bad('the answer is not JSON')
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad('the answer is not a JSON object')
  const answer = json as Record<string, unknown>
  switch (answer.result) {
    case 'deny': return DENY
    case 'ignore': return NO_OPINION
    case 'allow': break
    default: throw bad('"result" is not allow, deny or ignore')
  }
  const username = answer.username
  if (username !== undefined && (typeof username !== 'string' || username.length > MAX_VALUE)) throw bad('"username" is not a string')
  let groups: string[] = []
  if (answer.groups !== undefined) {
    if (!Array.isArray(answer.groups) || answer.groups.length > MAX_GROUPS || !answer.groups.every((g) => typeof g === 'string' && g.length <= MAX_VALUE)) {
      throw bad(`"groups" is not a list of at most ${MAX_GROUPS} strings`)
    }
    groups = answer.groups as string[]
  }
  let claims: Record<string, string> | null = null
  const attributes = answer.attributes
  if (attributes !== undefined) {
    if (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes)) throw bad('"attributes" is not an object')
    const entries = Object.entries(attributes)
    if (entries.length > MAX_ATTRIBUTES || !entries.every(([, v]) => typeof v === 'string' && v.length <= MAX_VALUE)) {
      throw bad(`"attributes" is not an object of at most ${MAX_ATTRIBUTES} string values`)
    }
    claims = Object.freeze(Object.fromEntries(entries) as Record<string, string>)
  }
  return { outcome: 'allow', username: username as string | undefined, groups: Object.freeze(groups), claims }
}
