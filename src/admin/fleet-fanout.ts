/**
 * The fleet half of the sessions view: which other instances to ask (the instance directory in
 * Redis, fleet/instance-directory.ts) and the asking, over HTTP with the same bearer token. Bounded:
 * at most CONCURRENCY requests at a time, each given TIMEOUT_MS, each answer read up to MAX_BYTES.
 * An instance that cannot be asked, or does not answer, is reported, never silently left out.
 */
import { InstanceDirectory, LIVE_MS } from '../fleet/instance-directory.js'

const TIMEOUT_MS = 3000
const CONCURRENCY = 8
/** A full page (1,000 rows) of long client ids stays well under it. */
const MAX_BYTES = 8 * 1024 * 1024

/** How an instance took part in a fleet-wide call. */
export interface InstanceStatus {
  readonly instance: string | null
  readonly url?: string | null
  readonly worker?: number
  readonly ok: boolean
  readonly error?: string
}

export interface Peer {
  readonly instance: string
  readonly url: string
}

export type PeerAnswer = { readonly ok: true; readonly status: number; readonly body: Record<string, unknown> } | { readonly ok: false; readonly error: string }

export class FleetFanout {
  readonly directory: InstanceDirectory
  private readonly token: string

  constructor(directory: InstanceDirectory, token: string) {
    this.directory = directory
    this.token = token
  }

  get self(): string {
    return this.directory.instanceId
  }

  /** The instances to ask, and those that cannot be (with why). Throws when Redis does not answer. */
  async peers(): Promise<{ ask: Peer[]; unreachable: InstanceStatus[] }> {
    const entries = await this.directory.lookup()
    const known = new Set(entries.map((e) => e.instance))
    const ask: Peer[] = []
    const unreachable: InstanceStatus[] = []
    for (const e of entries) {
      if (e.instance === this.self) continue
      if (e.via !== null) {
        // A worker: its primary lists it (its own entry says whether it can be asked).
        if (e.via === this.self || known.has(e.via) || e.ageMs > LIVE_MS) continue
        unreachable.push({ instance: e.instance, ok: false, error: `a worker of ${e.via}, which is gone from the directory` })
      } else if (e.ageMs > LIVE_MS) {
        unreachable.push({ instance: e.instance, url: e.url, ok: false, error: `no heartbeat in redis for ${Math.round(e.ageMs / 1000)} s: not asked` })
      } else if (e.url === null) {
        unreachable.push({ instance: e.instance, url: null, ok: false, error: 'advertises no admin endpoint (admin.advertise, docs/sessions.md): not asked' })
      } else {
        ask.push({ instance: e.instance, url: e.url })
      }
    }
    ask.sort((a, b) => (a.instance < b.instance ? -1 : 1))
    return { ask, unreachable }
  }

  /** `method path` on every peer, CONCURRENCY at a time; answers in the order of `peers`. */
  async askAll(peers: readonly Peer[], method: string, path: string, requestedBy: string): Promise<PeerAnswer[]> {
    const answers: PeerAnswer[] = new Array(peers.length)
    let next = 0
    const lane = async (): Promise<void> => {
      while (next < peers.length) {
        const i = next++
        answers[i] = await this.ask(peers[i]!, method, path, requestedBy)
      }
    }
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, peers.length) }, lane))
    return answers
  }

  private async ask(peer: Peer, method: string, path: string, requestedBy: string): Promise<PeerAnswer> {
    let res: Response
    try {
      res = await fetch(peer.url.replace(/\/+$/, '') + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'x-moat-via': this.self, 'x-moat-requested-by': requestedBy },
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: 'error',
      })
    } catch (err) {
      const inner = (err as { cause?: { code?: string; message?: string } }).cause
      return { ok: false, error: `no answer: ${inner?.code ?? inner?.message ?? (err as Error).message}` }
    }
    let text: string
    try {
      text = await readCapped(res)
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      return { ok: false, error: `HTTP ${res.status}, not JSON` }
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return { ok: false, error: `HTTP ${res.status}, not a JSON object` }
    return { ok: true, status: res.status, body: body as Record<string, unknown> }
  }
}

async function readCapped(res: Response): Promise<string> {
  if (res.body === null) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > MAX_BYTES) throw new Error(`answer over ${MAX_BYTES / 1024 / 1024} MiB: not read (ask for a smaller limit)`)
      chunks.push(value)
    }
  } catch (err) {
    await reader.cancel().catch(() => {})
    throw err instanceof Error && err.message.startsWith('answer over') ? err : new Error(`answer cut: ${(err as Error).message}`)
  }
  return Buffer.concat(chunks).toString('utf8')
}
