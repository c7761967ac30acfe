/**
 * Listeners: where clients connect. One Listener per configured entry, whatever its kind:
 *
 *   TCP accept ─▶ [PROXY header, if proxyProtocol] ─▶ [TLS handshake + client certificate, if mqtts/wss]
 *              ─▶ [HTTP upgrade to WebSocket, if ws/wss] ─▶ accept(ClientSocket, ConnInfo) ─▶ Session
 *
 * Each stage can refuse the connection (counted in moat_connections_refused_total{listener,reason}
 * and logged once); nothing reaches a Session, let alone the broker, before every stage passed. The
 * stages together are bounded by `limits.connectTimeout`.
 */
import net, { type BlockList, type Server, type Socket } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import type { PolicyStore } from '../policy/store.js'
import type { ListenerConfig, MoatConfig, TlsResumptionConfig } from '../config/types.js'
import { MoatError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../stats/stats.js'
import type { ClientCertificate, ClientSocket, ConnInfo, Transport } from '../client/conn-info.js'
import { addressList, inAddressList } from '../net/address-list.js'
import { readProxyHeader, type ProxyParse } from '../net/proxy-protocol.js'
import type { RefuseReason } from '../stats/refuse-reasons.js'
import { loadServerTls, sniContext, type ServerTls } from '../config/tls-settings.js'
import { DEFAULT_TLS_RESUMPTION } from '../config/tls-resumption.js'
import { clientCertRefusal, peerCertificate, resumedCertificateRefusal } from './tls.js'
import { ListenerResumption, resumptionOptions } from './resumption.js'
import { LocalTicketSeeds, type TicketSeeds } from './ticket-keys.js'
import { WS_PING_INTERVAL_MS } from '../config/tls-schema.js'
import { WsGateway, type WsDuplex } from './ws.js'

type SniDone = (err: Error | null, context?: tls.SecureContext) => void

/** Hands an accepted connection to the proxy, with what the listener learnt about it. */
export type AcceptFn = (socket: ClientSocket, conn: ConnInfo) => void

export interface ListenerContext {
  readonly policy: PolicyStore
  readonly stats: Stats
  readonly logger: Logger
  /** Where TLS listeners get their session-ticket seeds; absent: each its own, in this process. */
  readonly ticketSeeds?: TicketSeeds
}

/** A connection between TCP accept and its Session. */
interface Pending {
  readonly raw: Socket
  /** keyOf(raw) at accept: a socket under TLS loses its address once destroyed. */
  readonly key: string
  remoteAddress: string
  remotePort: number
  tlsVersion: string | null
  certificate: ClientCertificate | null
  timer: NodeJS.Timeout
}

function keyOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`
}

/**
 * Connections the kernel may queue before Moat accepts them. Node's default (511) overflows when a
 * fleet reconnects at once, and a client whose SYN is dropped tries again only after 1 s, then 3 s.
 * The kernel caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096

/** Node's error when a TLS handshake outlasts the server's handshakeTimeout. */
const HANDSHAKE_TIMEOUT = 'ERR_TLS_HANDSHAKE_TIMEOUT'
const TIMEOUT_DETAIL = 'no complete PROXY header, TLS handshake or WebSocket upgrade in time'

export class Listener {
  readonly config: ListenerConfig
  private readonly ctx: ListenerContext
  private readonly accept: AcceptFn
  private readonly server: Server
  private readonly transport: Transport
  private serverTls: ServerTls | null = null
  private tlsServer: tls.Server | null = null
  /** The TLS server's handshake timeout: limits.connectTimeout when it was made. */
  private handshakeMs = 0
  private readonly resumption: ListenerResumption | null = null
  private readonly ws: WsGateway | null = null
  private readonly trusted: BlockList | null
  private readonly pending = new Map<string, Pending>()
  /**
   * Connections whose TCP socket closed during the TLS handshake, kept until the next macrotask: Node
   * closes a socket whose client certificate failed before its tlsClientError says why, and by then
   * the TLS socket has lost its address. The errors come in the order of the closes.
   */
  private readonly closedInTls: Pending[] = []
  /**
   * TLS straight from accept, with no PROXY header, no WebSocket and no required client certificate:
   * Node's own handshake timeout bounds the handshake and the TLS socket knows the client's address,
   * so no pending entry is kept (a peer-address lookup and a timer less per connection).
   */
  private readonly tlsDirect: boolean
  private closed = false
  private readonly log: Logger

  constructor(config: ListenerConfig, ctx: ListenerContext, accept: AcceptFn) {
    this.config = config
    this.ctx = ctx
    this.accept = accept
    this.log = ctx.logger.child({ listener: config.name })
    this.transport = config.protocol === 'mqtt' ? 'tcp' : config.protocol === 'mqtts' ? 'tls' : config.protocol
    this.trusted = config.proxyProtocol === true ? addressList(config.trustedProxies ?? []) : null
    const handshakeMs = ctx.policy.config.limits.connectTimeoutMs
    const web = config.protocol === 'ws' || config.protocol === 'wss'
    if (config.tls !== undefined && config.tls !== null) {
      const serverTls = loadServerTls(config.tls)
      this.serverTls = serverTls
      this.tlsServer = this.makeTlsServer(serverTls, config.tls.resumption ?? DEFAULT_TLS_RESUMPTION, handshakeMs)
      this.resumption = new ListenerResumption(config.name, this.tlsServer, ctx.ticketSeeds ?? new LocalTicketSeeds(), this.log)
    }
    if (web) {
      this.ws = new WsGateway({
        path: config.path ?? '/mqtt',
        origins: config.origins ?? null,
        pingIntervalMs: config.pingIntervalMs ?? WS_PING_INTERVAL_MS,
        maxPayload: () => ctx.policy.config.limits.maxPacketSize,
        accepted: (duplex, socket) => this.onWebSocket(duplex, socket),
        refused: (socket, reason, detail) => this.refused(socket, reason, detail, false),
      }, handshakeMs)
    }
    this.tlsDirect = this.tlsServer !== null && this.trusted === null && this.ws === null && config.tls?.clientCert !== 'required'
    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket))
  }

  /**
   * The TLS server of this listener. An SNI callback only where there are `sni` entries: with one,
   * every handshake calls into JavaScript for it, whatever name the client asks for.
   */
  private makeTlsServer(serverTls: ServerTls, resumption: TlsResumptionConfig, handshakeMs: number): tls.Server {
    const t = this.config.tls!
    const server = tls.createServer({
      ...serverTls.options,
      ...resumptionOptions(this.config.name, resumption, serverTls.fingerprint),
      requestCert: t.clientCert !== 'none',
      // Required: OpenSSL then refuses a missing certificate itself, with the alert a verifying
      // OpenSSL server sends. Optional must admit a missing one, so verification waits for onSecure.
      rejectUnauthorized: t.clientCert === 'required',
      ALPNProtocols: this.config.protocol === 'wss' ? ['http/1.1'] : ['mqtt'],
      ...(serverTls.sni.size === 0 ? {} : { SNICallback: (servername: string, cb: SniDone) => cb(null, sniContext(this.serverTls!, servername) ?? this.serverTls!.context) }),
      handshakeTimeout: handshakeMs,
    })
    this.handshakeMs = handshakeMs
    server.on('secureConnection', (socket: TLSSocket) => this.onSecure(socket))
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => this.onTlsError(err, socket))
    return server
  }

  // ------------------------------------------------------------------ stages

  private onConnection(raw: Socket): void {
    if (this.trusted === null && this.tlsServer === null && this.ws === null) {
      this.accept(raw, this.connInfo(raw.remoteAddress ?? '', raw.remotePort ?? 0, null, null))
      return
    }
    if (this.tlsDirect) {
      this.tlsServer!.emit('connection', raw)
      return
    }
    const key = keyOf(raw)
    const entry: Pending = {
      raw,
      key,
      remoteAddress: raw.remoteAddress ?? '',
      remotePort: raw.remotePort ?? 0,
      tlsVersion: null,
      certificate: null,
      timer: setTimeout(onPendingTimeout, this.ctx.policy.config.limits.connectTimeoutMs, this, raw),
    }
    this.pending.set(key, entry)
    raw.once('close', () => {
      const current = this.pending.get(key)
      if (current?.raw === raw) {
        clearTimeout(current.timer)
        this.pending.delete(key)
        if (this.config.tls?.clientCert === 'required') {
          this.closedInTls.push(current)
          setImmediate(() => {
            const at = this.closedInTls.indexOf(current)
            if (at !== -1) this.closedInTls.splice(at, 1)
          })
        }
      }
    })
    raw.on('error', onSocketError)
    if (this.trusted !== null) {
      if (!inAddressList(this.trusted, raw.remoteAddress)) {
        this.refused(raw, 'proxy_untrusted', 'source is not in trustedProxies', true)
        return
      }
      readProxyHeader(raw, (result) => this.onProxyHeader(raw, entry, result))
      return
    }
    this.afterProxy(raw)
  }

  private onProxyHeader(raw: Socket, entry: Pending, result: ProxyParse): void {
    if (raw.destroyed) return
    if (result.kind !== 'done') {
      this.refused(raw, 'proxy_header_invalid', result.kind === 'invalid' ? result.reason : 'incomplete', true)
      return
    }
    if (result.header.address !== null) {
      entry.remoteAddress = result.header.address
      entry.remotePort = result.header.port
    }
    this.afterProxy(raw)
  }

  private afterProxy(raw: Socket): void {
    if (this.tlsServer !== null) this.tlsServer.emit('connection', raw)
    else if (this.ws !== null) {
      this.ws.handle(raw)
      if (this.trusted !== null) raw.resume() // the PROXY header reader paused it; HTTP listens now
    } else this.handOver(raw, raw)
  }

  private onSecure(socket: TLSSocket): void {
    const resumed = socket.isSessionReused()
    this.ctx.stats.tls.countHandshake(this.config.name, resumed)
    const entry = this.tlsDirect ? null : this.pending.get(keyOf(socket))
    if (entry === undefined || this.closed) {
      socket.destroy()
      return
    }
    let certificate: ClientCertificate | null = null
    const mode = this.config.tls!.clientCert
    if (mode !== 'none') {
      if (socket.authorized) {
        // A resumed session skipped the chain check: its certificate may have expired since.
        const refusal = resumed ? resumedCertificateRefusal(socket) : null
        if (refusal !== null) {
          this.refused(socket, 'client_cert_refused', refusal, true, entry)
          return
        }
        certificate = peerCertificate(socket)
      } else if (mode === 'required' || socket.getPeerX509Certificate() !== undefined) {
        this.refused(socket, 'client_cert_refused', clientCertRefusal(socket) ?? 'client certificate not accepted', true, entry)
        return
      }
    }
    const tlsVersion = socket.getProtocol()
    if (entry === null) {
      this.accept(socket, this.connInfo(socket.remoteAddress ?? '', socket.remotePort ?? 0, tlsVersion, certificate))
      return
    }
    entry.certificate = certificate
    entry.tlsVersion = tlsVersion
    if (this.ws !== null) this.ws.handle(socket)
    else this.handOver(socket, socket)
  }

  private onTlsError(err: NodeJS.ErrnoException, socket: TLSSocket): void {
    const timedOut = err.code === HANDSHAKE_TIMEOUT
    const reason = timedOut ? 'handshake_timeout' : 'tls_handshake_failed'
    const detail = timedOut ? TIMEOUT_DETAIL : err.code ?? err.message
    if (this.tlsDirect) {
      // A client gone before its handshake failed has no address left: nothing was refused.
      if (socket.remoteAddress !== undefined) this.refused(socket, reason, detail, true, null)
      return
    }
    const refusal = this.config.tls!.clientCert === 'required' ? clientCertRefusal(socket, err) : null
    const entry = this.pending.get(keyOf(socket)) ?? (refusal !== null && socket.remoteAddress === undefined ? this.closedInTls.shift() : undefined)
    if (entry === undefined) return
    if (refusal !== null) this.refused(socket, 'client_cert_refused', refusal, true, entry)
    else this.refused(socket, reason, detail, true, entry)
  }

  private onWebSocket(duplex: WsDuplex, socket: Socket): void {
    this.handOver(duplex, socket)
  }

  /** Every stage passed: the connection becomes a Session. */
  private handOver(client: ClientSocket, socket: Socket): void {
    const key = keyOf(socket)
    const entry = this.pending.get(key)
    if (entry === undefined) {
      client.destroy()
      return
    }
    clearTimeout(entry.timer)
    this.pending.delete(key)
    // The Session handles the errors of the socket it gets; a raw socket under TLS keeps the no-op.
    if (client === entry.raw) entry.raw.off('error', onSocketError)
    this.accept(client, this.connInfo(entry.remoteAddress, entry.remotePort, entry.tlsVersion, entry.certificate))
    // The PROXY header reader paused the raw socket; the Session is listening now.
    if (client === entry.raw && this.trusted !== null) client.resume()
  }

  private connInfo(remoteAddress: string, remotePort: number, tlsVersion: string | null, certificate: ClientCertificate | null): ConnInfo {
    return { listener: this.config.name, remoteAddress, remotePort, transport: this.transport, tlsVersion, certificate }
  }

  /**
   * Counts and logs a refusal; `destroy` closes the connection (HTTP refusals close after their
   * answer). `entry`: the connection's pending entry, null when it has none (a direct TLS listener).
   */
  refused(socket: Socket, reason: RefuseReason, detail: string, destroy: boolean, entry: Pending | null | undefined = this.pending.get(keyOf(socket))): void {
    const remote = entry == null ? `${socket.remoteAddress}:${socket.remotePort}` : `${entry.remoteAddress}:${entry.remotePort}`
    if (entry != null) {
      clearTimeout(entry.timer)
      if (this.pending.get(entry.key) === entry) this.pending.delete(entry.key)
    }
    this.ctx.stats.countRefused(this.config.name, reason)
    const level = reason === 'tls_handshake_failed' || reason === 'handshake_timeout' ? 'info' : 'warn'
    this.log[level]({ event: 'connection_refused', reason, remote, detail }, 'connection refused')
    if (destroy) {
      socket.destroy()
      entry?.raw.destroy()
    }
  }

  onPendingTimeout(raw: Socket): void {
    const entry = this.pending.get(keyOf(raw))
    if (entry?.raw !== raw) return
    this.refused(raw, 'handshake_timeout', TIMEOUT_DETAIL, true)
  }

  // ------------------------------------------------------------------ lifecycle

  /** On a config reload: new certificates, keys, CAs and CRLs apply to new connections; open ones go on. */
  reload(next: MoatConfig): void {
    const mine = next.listeners.find((l) => l.name === this.config.name)
    if (this.tlsServer === null || mine?.tls === undefined || mine.tls === null || mine.protocol !== this.config.protocol) return
    try {
      const serverTls = loadServerTls(mine.tls)
      const resumption = mine.tls.resumption ?? DEFAULT_TLS_RESUMPTION
      const handshakeMs = next.limits.connectTimeoutMs
      if ((serverTls.sni.size === 0) === (this.serverTls!.sni.size === 0) && handshakeMs === this.handshakeMs) {
        this.tlsServer.setSecureContext({ ...serverTls.options, ...resumptionOptions(this.config.name, resumption, serverTls.fingerprint) })
      } else {
        // The first `sni` entry or the last one gone, or a new connectTimeout (Node's handshake
        // timeout is the server's): a new server takes the new connections; handshakes under way
        // finish on the old one.
        this.tlsServer = this.makeTlsServer(serverTls, resumption, handshakeMs)
        this.resumption!.moveTo(this.tlsServer)
      }
      // The ticket key is derived from the files: a ticket issued before a new CRL does not resume past it.
      this.resumption!.apply(resumption, serverTls.fingerprint)
      this.serverTls = serverTls
      this.log.info({ event: 'tls_reload', outcome: 'success' }, 'certificates reloaded')
    } catch (err) {
      this.log.warn({ event: 'tls_reload', outcome: 'failure', error: (err as Error).message }, 'certificates not reloaded: keeping the running ones')
    }
  }

  listen(): Promise<void> {
    const { host, port, name } = this.config
    if (this.resumption !== null && this.serverTls !== null) this.resumption.apply(this.config.tls!.resumption ?? DEFAULT_TLS_RESUMPTION, this.serverTls.fingerprint)
    return new Promise((resolve, reject) => {
      const server = this.server
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new MoatError('MOAT_ERR_LISTEN', `listener '${name}' cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      }
      server.once('error', onError)
      server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', onError)
        resolve()
      })
    })
  }

  address(): { host: string; port: number } {
    const address = this.server.address()
    if (address === null || typeof address === 'string') throw new Error(`listener '${this.config.name}' is not listening`)
    return { host: address.address, port: address.port }
  }

  get listening(): boolean {
    return this.server.listening
  }

  /** Stops accepting; open connections are not touched (they are the sessions' business). */
  close(): void {
    // A handshake under way on a direct TLS listener is closed when it completes, or by its timeout.
    this.closed = true
    if (this.server.listening) this.server.close()
    this.resumption?.close()
    this.ws?.close()
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer)
      entry.raw.destroy()
    }
    this.pending.clear()
  }
}

function onPendingTimeout(listener: Listener, raw: Socket): void {
  listener.onPendingTimeout(raw)
}

function onSocketError(): void {
  // A reset before the session exists: 'close' follows and clears the pending entry.
}
