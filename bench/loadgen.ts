/**
 * The load generator: raw TCP sockets (TLS ones for the TLS targets), pre-encoded packets,
 * pipelined writes, and Moat's own Framer to cut what comes back (counting frames costs tens of
 * nanoseconds), so that one core of load generator can saturate a broker on the other. MQTT 3.1.1
 * throughout.
 */
import net from 'node:net'
import type { TLSSocket } from 'node:tls'
import { generate } from 'mqtt-packet'
import { Framer, frameBuffer, type FrameSink } from '../src/protocol/framer.js'
import { tlsConnect, type TlsClient } from './tls.js'

export interface Endpoint {
  readonly host: string
  readonly port: number
  /** Present for a TLS target: the client connections speak TLS, verified against this CA. */
  readonly tls?: TlsClient
}

/**
 * Opens a connection to `target`: plain TCP, or TLS when the target has `tls` (offering `session`
 * for resumption when given). Writes made before the handshake completes are sent after it.
 */
export function dial(target: Endpoint, localAddress?: string, session?: Buffer): net.Socket {
  if (target.tls !== undefined) return tlsConnect(target.tls, target.host, target.port, localAddress, session)
  return net.connect({ host: target.host, port: target.port, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) })
}

/** Whether a socket resumed a TLS session (false for plain TCP). */
export function resumed(socket: net.Socket): boolean {
  return 'isSessionReused' in socket && (socket as TLSSocket).isSessionReused()
}

export interface ClientOptions {
  readonly clientId: string
  readonly username?: string
  readonly password?: string
  /** Local address the connection comes from (one address has ~28,000 ports towards one port). */
  readonly localAddress?: string
  readonly keepalive?: number
}

/** Called for each PUBLISH received: the frame, its flags and where its body starts. */
export type OnPublish = (frame: Buffer, flags: number, bodyOffset: number) => void

const PUBACK = 4

export function connectFrame(o: ClientOptions): Buffer {
  return generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: o.keepalive ?? 0, clientId: o.clientId,
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(o.password === undefined ? {} : { password: Buffer.from(o.password) }),
  })
}

export function publishFrame(topic: string, payload: Buffer, qos: 0 | 1, messageId = 1): Buffer {
  return generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos > 0 ? { messageId } : {}) })
}

/** One MQTT client connection. */
export class Client implements FrameSink {
  readonly socket: net.Socket
  private readonly framer: Framer
  /** PUBLISH frames received. */
  publishes = 0
  /** PUBACKs received (for our QoS 1 publishes). */
  pubacks = 0
  /** Acknowledge received QoS 1 PUBLISHes (batched per chunk). */
  private pendingAcks: number[] = []
  onPublish: OnPublish | null = null
  onPuback: (() => void) | null = null
  private connackWaiter: ((code: number) => void) | null = null
  closed = false
  /** The first socket error (its code), or null. */
  error: string | null = null
  /** TLS: the latest session the server gave this connection (to offer on the next one), and whether its handshake completed. */
  session: Buffer | null = null
  secured = false

  /** `session`: a TLS session to offer (resumption); ignored for plain targets. */
  constructor(target: Endpoint, localAddress?: string, session?: Buffer) {
    this.socket = dial(target, localAddress, session)
    this.socket.setNoDelay(true)
    if (target.tls !== undefined) {
      this.socket.on('session', (s: Buffer) => { this.session = s })
      this.socket.once('secureConnect', () => { this.secured = true })
    }
    this.framer = new Framer(this, 1 << 24)
    this.socket.on('data', (chunk: Buffer) => {
      this.framer.push(chunk)
      if (this.pendingAcks.length > 0) this.flushAcks()
    })
    this.socket.on('error', (e: NodeJS.ErrnoException) => { this.error ??= e.code ?? e.message })
    this.socket.on('close', () => {
      this.closed = true
      this.connackWaiter?.(-1)
    })
  }

  /** Sends CONNECT (built from `o`, or a frame built beforehand); resolves with the CONNACK return code (-1: the connection closed first). */
  connect(o: ClientOptions | Buffer): Promise<number> {
    return new Promise((resolve) => {
      this.connackWaiter = resolve
      this.socket.write(Buffer.isBuffer(o) ? o : connectFrame(o))
    })
  }

  subscribe(filter: string, qos: 0 | 1): Promise<void> {
    return new Promise((resolve) => {
      const before = this.subacks
      this.subackWaiter = () => { if (this.subacks > before) resolve() }
      this.socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }))
    })
  }

  private subacks = 0
  private subackWaiter: (() => void) | null = null

  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    const frame = frameBuffer(buf, start, end)
    switch (type) {
      case 2: {
        const w = this.connackWaiter
        this.connackWaiter = null
        w?.(frame[3]!)
        break
      }
      case 3:
        this.publishes++
        if (((flags >> 1) & 3) === 1) {
          const topicLength = frame.readUInt16BE(bodyOffset)
          this.pendingAcks.push(frame.readUInt16BE(bodyOffset + 2 + topicLength))
        }
        this.onPublish?.(frame, flags, bodyOffset)
        break
      case PUBACK:
        this.pubacks++
        this.onPuback?.()
        break
      case 9:
        this.subacks++
        this.subackWaiter?.()
        break
    }
    return true
  }

  onFrameError(): void {
    this.socket.destroy()
  }

  private flushAcks(): void {
    const ids = this.pendingAcks
    const out = Buffer.allocUnsafe(ids.length * 4)
    for (let i = 0; i < ids.length; i++) {
      out[i * 4] = 0x40
      out[i * 4 + 1] = 2
      out.writeUInt16BE(ids[i]!, i * 4 + 2)
    }
    this.pendingAcks = []
    this.socket.write(out)
  }

  close(): void {
    this.socket.destroy()
  }

  /** Sends DISCONNECT and closes; resolves once the connection is closed. */
  disconnect(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve()
      this.socket.once('close', () => resolve())
      this.socket.end(DISCONNECT)
    })
  }
}

const DISCONNECT = Buffer.from([0xe0, 0x00])

/** Opens a client and waits for a successful CONNACK (throws otherwise). */
export async function openClient(target: Endpoint, o: ClientOptions): Promise<Client> {
  const c = new Client(target, o.localAddress)
  const code = await c.connect(o)
  if (code !== 0) {
    c.close()
    throw new Error(`CONNECT ${o.clientId} refused (code ${code})`)
  }
  return c
}

let sourceBlocks = 0

/**
 * The first of the next block of `sources` source addresses 127.0.0.x (x from 10 to 255, blocks
 * handed out in turn): the ports of a previous run's connections sit in TIME_WAIT for a minute,
 * and binding among an address's ports mostly in TIME_WAIT made the kernel search for a free one
 * for every connection (the load generator at 100 % of its core).
 */
export function sourceBlock(sources: number): number {
  return 10 + (sourceBlocks++ % Math.max(1, Math.floor(246 / sources))) * sources
}

/** Local source address number `i` of a range 127.0.0.`first`…: keeps each under `perAddress` connections. */
export function loopbackSource(i: number, first: number, perAddress = 20_000): string {
  return `127.0.0.${first + Math.floor(i / perAddress)}`
}

/**
 * `rounds` CONNECT rounds (open, CONNECT, CONNACK, DISCONNECT, close), `inFlight` at a time, from
 * the system's choice of source address: a warm-up. Round i sends `options(i)`; with `sessions`,
 * it offers sessions[i % sessions.length] and keeps the session it got there (resumption).
 * Resolves with the rounds refused.
 */
export async function connectRounds(target: Endpoint, rounds: number, inFlight: number, options: (i: number) => ClientOptions, sessions?: Array<Buffer | undefined>): Promise<number> {
  let next = 0
  let refused = 0
  const loop = async (): Promise<void> => {
    while (next < rounds) {
      const i = next++
      const slot = sessions === undefined ? -1 : i % sessions.length
      const c = new Client(target, undefined, slot < 0 ? undefined : sessions![slot])
      if (await c.connect(options(i)) !== 0) refused++
      await c.disconnect()
      if (slot >= 0 && c.session !== null) sessions![slot] = c.session
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, rounds) }, loop))
  return refused
}
