/**
 * The socket and timer events of a session. Handlers are module-level functions that find their
 * session through a symbol slot on the socket (or the timer's argument), so a session allocates no
 * closures.
 */
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { lendReads, returnLent } from '../net/lent-reads.js'
import type { ClientSocket } from './conn-info.js'
import type { Session } from './session.js'
import type { UpstreamSocket } from './upstream.js'

/** How a side is read: into the shared lent buffer (plain TCP, net/lent-reads.ts) or through 'data'. */
export type ReadMode = 'lent' | 'stream'

const kSession = Symbol('moat.session')

type SessionSocket = (UpstreamSocket | ClientSocket) & { [kSession]: Session }

/** Routes the client socket's events to `session`; returns how it is read. */
export function listenToClient(session: Session, client: ClientSocket): ReadMode {
  (client as SessionSocket)[kSession] = session
  client.setNoDelay(true)
  let mode: ReadMode = 'lent'
  if (!lendReads(client as Socket, onLentClientRead)) {
    mode = 'stream'
    client.on('data', onClientData)
  }
  client.on('end', onClientEnd)
  client.on('error', onClientError)
  client.on('close', onClientClose)
  client.on('drain', onClientDrain)
  return mode
}

/** Routes the broker connection's events to `session` (`readyEvent`: it takes MQTT bytes); returns how it is read. */
export function listenToUpstream(session: Session, upstream: UpstreamSocket, readyEvent: string): ReadMode {
  (upstream as SessionSocket)[kSession] = session
  upstream.setNoDelay(true)
  upstream.on(readyEvent, onUpstreamConnect)
  let mode: ReadMode = 'lent'
  if (!lendReads(upstream as Duplex as Socket, onLentUpstreamRead)) {
    mode = 'stream'
    upstream.on('data', onUpstreamData)
  }
  upstream.on('end', onUpstreamEnd)
  upstream.on('error', onUpstreamError)
  upstream.on('close', onUpstreamClose)
  upstream.on('drain', onUpstreamDrain)
  return mode
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

// Timers of the session's one timer slot: the argument is the session.
export function onConnectTimeout(session: Session): void {
  session.onConnectTimeout()
}
export function onDialTimeout(session: Session): void {
  session.admission.dialFailed('connect timeout')
}
export function onLingerTimeout(session: Session): void {
  session.onLingerTimeout()
}
