/**
 * One probe connection of `moat audit --target`: a raw TCP or TLS socket to the named address only,
 * MQTT 3.1.1 packets written with mqtt-packet's `generate` and read with its `parser`. Every wait
 * has a timeout; a wait that ends (timeout or closed connection) resolves with null, never hangs.
 */
import net from 'node:net'
import tls from 'node:tls'
import { generate, parser as createParser, type Packet } from 'mqtt-packet'

export interface Endpoint {
  readonly host: string
  readonly port: number
  readonly tls: boolean
  readonly ca: string | null
  readonly servername: string | null
  readonly timeoutMs: number
}

/** Why a connection could not be opened (the socket error, a handshake error, or a timeout). */
export class OpenError extends Error {
  constructor(message: string, readonly code: string | undefined) {
    super(message)
  }
}

interface Waiter {
  readonly match: (p: Packet) => boolean
  readonly resolve: (p: Packet | null) => void
  readonly timer: NodeJS.Timeout
}

export class ProbeConnection {
  /** Packets received that no waiter has taken yet (capped: the oldest are dropped). */
  private readonly inbox: Packet[] = []
  private readonly waiters = new Set<Waiter>()
  private readonly closeWaiters = new Set<() => void>()
  closed = false
  /** For TLS: whether the server's certificate verified against the CA (or the system store). */
  readonly authorized: boolean
  readonly authorizationError: string | null

  private constructor(private readonly socket: net.Socket | tls.TLSSocket) {
    const parser = createParser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => this.deliver(p))
    parser.on('error', () => socket.destroy())
    socket.on('data', (data: Buffer) => { parser.parse(data) })
    socket.on('error', () => { /* a close follows */ })
    socket.on('close', () => this.onClose())
    if (socket instanceof tls.TLSSocket) {
      this.authorized = socket.authorized
      this.authorizationError = socket.authorizationError === undefined || socket.authorizationError === null ? null : String(socket.authorizationError)
    } else {
      this.authorized = true
      this.authorizationError = null
    }
  }

  /** Opens a socket to the endpoint (TLS when asked); `tlsOptions` pin versions/ciphers for a version probe. */
  static open(ep: Endpoint, tlsOptions: tls.ConnectionOptions = {}): Promise<ProbeConnection> {
    return new Promise((resolve, reject) => {
      let socket: net.Socket | tls.TLSSocket
      const ready = (): void => {
        clearTimeout(timer)
        socket.removeListener('error', fail)
        resolve(new ProbeConnection(socket))
      }
      const fail = (err: NodeJS.ErrnoException): void => {
        clearTimeout(timer)
        socket.destroy()
        reject(new OpenError(err.message, err.code))
      }
      if (ep.tls) {
        socket = tls.connect({
          host: ep.host,
          port: ep.port,
          // Verification is a finding, not a stop: the probe reads `authorized` afterwards.
          rejectUnauthorized: false,
          ...(ep.ca === null ? {} : { ca: ep.ca }),
          ...(net.isIP(ep.host) === 0 || ep.servername !== null ? { servername: ep.servername ?? ep.host } : {}),
          ...tlsOptions,
        }, ready)
      } else {
        socket = net.connect({ host: ep.host, port: ep.port }, ready)
      }
      socket.setNoDelay(true)
      socket.once('error', fail)
      const timer = setTimeout(() => fail(Object.assign(new Error(`no answer within ${ep.timeoutMs} ms`), { code: 'ETIMEDOUT' })), ep.timeoutMs)
    })
  }

  send(packet: Packet): void {
    if (!this.closed) this.socket.write(generate(packet))
  }

  writeRaw(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes)
  }

  /** The first received packet matching `match` (earlier ones included), or null on timeout/close. */
  next(match: (p: Packet) => boolean, timeoutMs: number): Promise<Packet | null> {
    const i = this.inbox.findIndex(match)
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!)
    if (this.closed) return Promise.resolve(null)
    return new Promise((resolve) => {
      const waiter: Waiter = {
        match,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter)
          resolve(null)
        }, timeoutMs),
      }
      this.waiters.add(waiter)
    })
  }

  /** True when the peer closed the connection within `timeoutMs`. */
  closedWithin(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.closeWaiters.delete(done)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.closeWaiters.delete(done)
        resolve(false)
      }, timeoutMs)
      this.closeWaiters.add(done)
    })
  }

  /** DISCONNECT (when still open) and close. */
  close(): void {
    if (this.closed) return
    this.socket.end(generate({ cmd: 'disconnect' }))
    this.socket.destroySoon()
    // A peer that never acknowledges the FIN does not keep the probe alive.
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  destroy(): void {
    this.socket.destroy()
  }

  private deliver(p: Packet): void {
    // Acknowledge at once: a broker stops delivering once its in-flight window (Mosquitto: 20) is full.
    if (p.cmd === 'publish' && p.messageId !== undefined) {
      if (p.qos === 1) this.send({ cmd: 'puback', messageId: p.messageId })
      else if (p.qos === 2) this.send({ cmd: 'pubrec', messageId: p.messageId })
    } else if (p.cmd === 'pubrel') {
      this.send({ cmd: 'pubcomp', messageId: p.messageId })
    }
    for (const w of this.waiters) {
      if (w.match(p)) {
        clearTimeout(w.timer)
        this.waiters.delete(w)
        w.resolve(p)
        return
      }
    }
    // Bounded: a $SYS subscription alone brings dozens of retained messages; the oldest go first.
    if (this.inbox.length >= 256) this.inbox.shift()
    this.inbox.push(p)
  }

  private onClose(): void {
    this.closed = true
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.resolve(null)
    }
    this.waiters.clear()
    for (const done of [...this.closeWaiters]) done()
  }
}
