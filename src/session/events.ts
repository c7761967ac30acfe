/**
 * The socket and timer events of a session. Handlers are module-level functions that find their
 * session through a symbol slot on the socket (or the timer's argument), so a session allocates no
 * closures.
 */
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { lendReads, returnLent, type LentReadCallback } from '../net/lent-reads.js'
import type { ClientSocket } from '../client/conn-info.js'
import type { Session } from './session.js'
import type { UpstreamSocket } from './upstream.js'

/** How a side is read: into the shared lent buffer (plain TCP, net/lent-reads.ts) or through 'data'. */
export type ReadMode = 'lent' | 'stream'

const kSession = Symbol('moat.session')

type SessionSocket = (UpstreamSocket | ClientSocket) & { [kSession]: Session }

/** The handlers of one side's socket. */
interface SideHandlers {
  readonly lent: LentReadCallback
  readonly data: (this: SessionSocket, chunk: Buffer) => void
  readonly end: (this: SessionSocket) => void
  readonly error: (this: SessionSocket, err: Error) => void
  readonly close: (this: SessionSocket) => void
  readonly drain: (this: SessionSocket) => void
}

/** Routes `socket`'s events to `session`; returns how it is read. */
function listen(session: Session, socket: ClientSocket | UpstreamSocket, on: SideHandlers): ReadMode {
  (socket as SessionSocket)[kSession] = session
  let mode: ReadMode = 'lent'
  if (!lendReads(socket as Duplex as Socket, on.lent)) {
    mode = 'stream'
    socket.on('data', on.data)
  }
  socket.on('end', on.end)
  socket.on('error', on.error)
  socket.on('close', on.close)
  socket.on('drain', on.drain)
  return mode
}

/**
 * The client's TCP socket already has TCP_NODELAY: the listener's server sets it on every socket it
 * accepts, and a TLS or WebSocket client sits on such a socket (setting it again through a TLS
 * socket would cost a system call per connection).
 */
export function listenToClient(session: Session, client: ClientSocket): ReadMode {
  return listen(session, client, CLIENT)
}

/** `readyEvent`: the broker connection takes MQTT bytes. */
export function listenToUpstream(session: Session, upstream: UpstreamSocket, readyEvent: string): ReadMode {
  upstream.setNoDelay(true)
  upstream.on(readyEvent, onUpstreamConnect)
  return listen(session, upstream, UPSTREAM)
}

function onClientData(this: SessionSocket, chunk: Buffer): void {
  this[kSession].onClientData(chunk, chunk.length, false)
}
function onLentClientRead(this: Socket, nread: number, buf: Buffer): void {
  (this as Duplex as SessionSocket)[kSession].onClientData(buf, nread, true)
  returnLent(nread)
}
function onClientEnd(this: SessionSocket): void {
  this[kSession].ends.clientEnded('client_closed')
}
function onClientError(this: SessionSocket): void {
  this[kSession].ends.clientEnded('client_error')
}
function onClientClose(this: SessionSocket): void {
  this[kSession].onClientClosed()
}
function onClientDrain(this: SessionSocket): void {
  this[kSession].onClientDrain()
}
function onUpstreamConnect(this: SessionSocket): void {
  this[kSession].onUpstreamConnect()
}
function onUpstreamData(this: SessionSocket, chunk: Buffer): void {
  this[kSession].onUpstreamData(chunk, chunk.length, false)
}
function onLentUpstreamRead(this: Socket, nread: number, buf: Buffer): void {
  (this as Duplex as SessionSocket)[kSession].onUpstreamData(buf, nread, true)
  returnLent(nread)
}
function onUpstreamEnd(this: SessionSocket): void {
  this[kSession].ends.upstreamGone('upstream_closed', 'broker closed the connection')
}
function onUpstreamError(this: SessionSocket, err: Error): void {
  this[kSession].ends.upstreamGone('upstream_error', err.message)
}
function onUpstreamClose(this: SessionSocket): void {
  this[kSession].onUpstreamClosed()
}
function onUpstreamDrain(this: SessionSocket): void {
  this[kSession].onUpstreamDrain()
}

const CLIENT: SideHandlers = { lent: onLentClientRead, data: onClientData, end: onClientEnd, error: onClientError, close: onClientClose, drain: onClientDrain }
const UPSTREAM: SideHandlers = { lent: onLentUpstreamRead, data: onUpstreamData, end: onUpstreamEnd, error: onUpstreamError, close: onUpstreamClose, drain: onUpstreamDrain }

// Timers of the session's one timer slot: the argument is the session.
export function onConnectTimeout(session: Session): void {
  session.onConnectTimeout()
}
export function onDialTimeout(session: Session): void {
  session.admission.dialTimedOut()
}
export function onLingerTimeout(session: Session): void {
  session.onLingerTimeout()
}
