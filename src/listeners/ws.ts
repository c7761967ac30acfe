/**
 * MQTT over WebSocket (ws and wss listeners), with the `ws` package.
 *
 * WsGateway answers the HTTP upgrade on the configured path, checks `Origin` against the allow-list
 * and requires the `mqtt` (or `mqttv3.1`) subprotocol; anything else gets an HTTP error and never
 * reaches a Session. An accepted WebSocket becomes a WsDuplex, a Duplex with a socket's counters,
 * so the Session and its Framer treat it like TCP: binary messages are pushed as bytes (a packet may
 * span messages, a message may hold several packets), and writes become binary messages.
 * Backpressure: a paused Session stops the WebSocket reading its socket; writes hold their callback
 * while the WebSocket's buffered amount is above the high-water mark. The gateway pings every
 * client and terminates one that did not answer the previous ping.
 */
import http, { type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { createRequire } from 'node:module'
import type { WebSocket, WebSocketServer } from 'ws'
import type { ClientSocket } from '../client/conn-info.js'
import type { RefuseReason } from '../stats/refuse-reasons.js'

export const WS_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const
/** Above this many bytes buffered in the WebSocket, writes wait for the socket (backpressure). */
const WS_HIGH_WATER_MARK = 64 * 1024
const BINARY = { binary: true } as const

const kDuplex = Symbol('moat.wsDuplex')
type TaggedWebSocket = WebSocket & { [kDuplex]: WsDuplex }

export class WsDuplex extends Duplex implements ClientSocket {
  readonly ws: WebSocket
  bytesRead = 0
  bytesWritten = 0
  /** Cleared by each ping, set by each pong. */
  alive = true

  /** Where the client reached Moat (for a PROXY header towards the broker). */
  readonly localAddress: string | undefined
  readonly localPort: number | undefined

  constructor(ws: WebSocket, socket: Socket) {
    super({ allowHalfOpen: false })
    this.ws = ws
    this.localAddress = socket.localAddress
    this.localPort = socket.localPort
    const tagged = ws as TaggedWebSocket
    tagged[kDuplex] = this
    ws.binaryType = 'nodebuffer'
    tagged.on('message', onWsMessage as (this: WebSocket, ...args: unknown[]) => void)
    tagged.on('close', onWsClose as (this: WebSocket) => void)
    tagged.on('error', onWsError as (this: WebSocket, err: Error) => void)
    tagged.on('pong', onWsPong as (this: WebSocket) => void)
  }

  /** Bytes the WebSocket holds that its socket has not taken yet. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount
  }

  onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      // MQTT over WebSocket is binary only; a text frame closes the connection [MQTT-6.0.0-1].
      this.destroy(new Error('text WebSocket message'))
      return
    }
    this.bytesRead += data.length
    if (!this.push(data)) this.ws.pause()
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume()
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytesWritten += chunk.length
    if (this.ws.bufferedAmount + chunk.length > WS_HIGH_WATER_MARK) {
      this.ws.send(chunk, BINARY, callback)
    } else {
      this.ws.send(chunk, BINARY)
      callback()
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000)
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.CLOSED) this.ws.terminate()
    callback(error)
  }
}

function onWsMessage(this: TaggedWebSocket, data: Buffer, isBinary: boolean): void {
  this[kDuplex].onMessage(data, isBinary)
}
function onWsClose(this: TaggedWebSocket): void {
  this[kDuplex].push(null)
}
function onWsError(this: TaggedWebSocket, err: Error): void {
  this[kDuplex].destroy(err)
}
function onWsPong(this: TaggedWebSocket): void {
  this[kDuplex].alive = true
}

export interface WsGatewayOptions {
  readonly path: string
  readonly origins: readonly string[] | null
  readonly pingIntervalMs: number
  /** Largest WebSocket message accepted (the proxy's maxPacketSize), read at each upgrade. */
  maxPayload(): number
  /** A WebSocket was accepted on `socket` (the TCP or TLS socket the upgrade came on). */
  accepted(duplex: WsDuplex, socket: Socket): void
  refused(socket: Socket, reason: RefuseReason, detail: string): void
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 426: 'Upgrade Required' }

function httpError(socket: Socket, status: number, message: string, extra = ''): void {
  const body = `${message}\n`
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`)
}

/** Picks `mqtt` (or `mqttv3.1`) from the client's offered subprotocols; null when it offered neither. */
export function pickSubprotocol(header: string | undefined): string | null {
  if (header === undefined) return null
  const offered = header.split(',').map((p) => p.trim())
  for (const wanted of WS_SUBPROTOCOLS) if (offered.includes(wanted)) return wanted
  return null
}

// ws is loaded when a ws or wss listener is made, not at start: about 1.6 MB of heap a Moat without
// one would carry, and mark at every full GC (GC pauses).
const load = createRequire(import.meta.url)

export class WsGateway {
  /** Never listens: the listener hands it sockets (after the PROXY header and TLS, if any). */
  private readonly http: http.Server
  private readonly wss: WebSocketServer
  private readonly options: WsGatewayOptions
  private readonly clients = new Set<WsDuplex>()
  private readonly pinger: NodeJS.Timeout

  constructor(options: WsGatewayOptions, requestTimeoutMs: number) {
    this.options = options
    this.http = http.createServer({ requestTimeout: requestTimeoutMs, headersTimeout: requestTimeoutMs, maxHeaderSize: 8192 })
    this.http.on('request', (req: IncomingMessage, res: http.ServerResponse) => {
      this.options.refused(req.socket, 'ws_not_upgrade', `${req.method ?? ''} without Upgrade`)
      onPlainRequest(req, res)
    })
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head))
    this.http.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
    const { WebSocketServer: Server } = load('ws') as typeof import('ws')
    this.wss = new Server({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.maxPayload(),
      handleProtocols: (protocols: Set<string>) => {
        for (const wanted of WS_SUBPROTOCOLS) if (protocols.has(wanted)) return wanted
        return false
      },
    })
    this.pinger = setInterval(pingAll, options.pingIntervalMs, this.clients)
    this.pinger.unref()
  }

  /** A connection (TCP, or TLS after its handshake) that should speak HTTP next. */
  handle(socket: Socket): void {
    this.http.emit('connection', socket)
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { path, origins } = this.options
    const url = req.url ?? ''
    const q = url.indexOf('?')
    const requestPath = q === -1 ? url : url.slice(0, q)
    if (requestPath !== path) {
      this.options.refused(socket, 'ws_bad_path', `path '${requestPath.slice(0, 200)}'`)
      httpError(socket, 404, `no MQTT endpoint here: use ${path}`)
      return
    }
    const origin = req.headers.origin
    if (origins !== null && (origin === undefined || !origins.includes(origin))) {
      this.options.refused(socket, 'ws_bad_origin', `origin '${(origin ?? '(none)').slice(0, 200)}'`)
      httpError(socket, 403, 'origin not allowed')
      return
    }
    if (pickSubprotocol(req.headers['sec-websocket-protocol']) === null) {
      this.options.refused(socket, 'ws_bad_subprotocol', `subprotocols '${(req.headers['sec-websocket-protocol'] ?? '(none)').slice(0, 200)}'`)
      httpError(socket, 400, "the WebSocket subprotocol must be 'mqtt' (or 'mqttv3.1')")
      return
    }
    this.wss.options.maxPayload = this.options.maxPayload()
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const duplex = new WsDuplex(ws, socket)
      this.clients.add(duplex)
      duplex.once('close', () => this.clients.delete(duplex))
      this.options.accepted(duplex, socket)
    })
  }

  close(): void {
    clearInterval(this.pinger)
  }
}

function onPlainRequest(req: IncomingMessage, res: http.ServerResponse): void {
  req.resume()
  res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket', Connection: 'close' })
  res.end('this endpoint speaks MQTT over WebSocket only\n')
}

function pingAll(clients: Set<WsDuplex>): void {
  for (const client of clients) {
    if (!client.alive) {
      client.destroy(new Error('no WebSocket pong'))
      continue
    }
    client.alive = false
    client.ws.ping()
  }
}
