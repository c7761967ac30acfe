/**
 * The admin endpoint: /metrics (Prometheus text, or OpenMetrics when asked for: admin/exposition.ts),
 * /healthz (the process answers), /readyz (every listener is up and the broker accepts TCP
 * connections), /bans (admin/ban-api.ts) and /sessions (admin/sessions-api.ts): bearer token
 * required, disabled without one. Loopback by default; /metrics and the probes have no
 * authentication, so never expose it beyond a trusted network.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import net from 'node:net'
import type { AdminConfig, UpstreamConfig } from '../config/types.js'
import { MoatError } from '../errors.js'
import type { BanApi } from './ban-api.js'
import type { SessionsApi } from './sessions-api.js'
import { contentTypeOf, formatFor, render, type MetricsSource } from './exposition.js'

export interface ReadinessSource {
  listenersUp(): boolean
  readonly upstream: UpstreamConfig
}

/** How long a broker reachability answer is reused, so /readyz polling does not hammer the broker. */
const PROBE_CACHE_MS = 1000

export class AdminServer {
  private readonly config: AdminConfig
  private readonly metrics: MetricsSource
  private readonly source: ReadinessSource
  private readonly server: Server
  private lastProbeAt = 0
  private lastProbe: Promise<boolean> | null = null
  private readonly bans: BanApi | null
  private readonly sessions: SessionsApi | null

  constructor(config: AdminConfig, metrics: MetricsSource, source: ReadinessSource, apis: { bans?: BanApi; sessions?: SessionsApi } = {}) {
    this.config = config
    this.metrics = metrics
    this.source = source
    this.bans = apis.bans ?? null
    this.sessions = apis.sessions ?? null
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500)
        res.end()
      })
    })
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/bans' && this.bans !== null) return this.bans.handle(req, res)
    if ((path === '/sessions' || path?.startsWith('/sessions/') === true) && this.sessions !== null) return this.sessions.handle(req, res)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/metrics') {
      const format = formatFor(req.headers.accept)
      const body = await render(await this.metrics.getMetricsAsJSON(), format)
      res.writeHead(200, { 'content-type': contentTypeOf(format) }).end(body)
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
    } else if (path === '/readyz') {
      const listeners = this.source.listenersUp()
      const broker = listeners && (await this.probeBroker())
      const ready = listeners && broker
      const body = ready ? 'ready\n' : !listeners ? 'not ready: listeners down\n' : 'not ready: broker unreachable\n'
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(body)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
    }
  }

  private probeBroker(): Promise<boolean> {
    const now = Date.now()
    if (this.lastProbe !== null && now - this.lastProbeAt < PROBE_CACHE_MS) return this.lastProbe
    this.lastProbeAt = now
    const { host, port, connectTimeoutMs } = this.source.upstream
    this.lastProbe = new Promise((resolve) => {
      const socket = net.connect({ host, port })
      const done = (ok: boolean): void => {
        socket.destroy()
        resolve(ok)
      }
      socket.setTimeout(Math.min(connectTimeoutMs, 2000), () => done(false))
      socket.once('connect', () => done(true))
      socket.once('error', () => done(false))
    })
    return this.lastProbe
  }

  listen(): Promise<void> {
    const { host, port } = this.config
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new MoatError('MOAT_ERR_LISTEN', `admin endpoint cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      }
      this.server.once('error', onError)
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError)
        resolve()
      })
    })
  }

  address(): { host: string; port: number } {
    const address = this.server.address()
    if (address === null || typeof address === 'string') throw new Error('admin endpoint is not listening')
    return { host: address.address, port: address.port }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections()
      this.server.close(() => resolve())
    })
  }
}
