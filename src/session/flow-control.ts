/**
 * Which side Moat reads, and why not. A full write buffer on one side pauses reading on the other
 * and 'drain' resumes it; the client is also not read while its CONNECT is judged, while a
 * throttled packet waits, and after a 5.0 DISCONNECT. Each reason is a bit; the client is read
 * again when none is left. The Session decides when; this holds how.
 *
 * A paused client read into the lent buffer keeps reading, its bytes held (copied) by its stopped
 * framer, up to PAUSED_HOLD_BYTES; then its socket stops reading too. A socket read through 'data'
 * does the same in Node (its paused stream buffers up to the high-water mark, 16 KiB), and reading
 * on is how a client that leaves while Moat waits (an auth backend, a full broker) is noticed: a
 * socket that reads nothing sees no end of stream.
 *
 * The broker's side stops reading at once when the client does not take its deliveries: a TLS
 * client reports a full buffer after every large write until the event loop's turn ends, and a
 * broker read held meanwhile would be a copy of up to 64 KiB each time. What the broker sends
 * waits in the kernel, its close too, until the client drains.
 */
import type { Framer } from '../protocol/framer.js'
import type { ReadMode } from './events.js'
import { Phase } from './phase.js'
import type { Session } from './session.js'

/** Why the client is not read: a bit each. */
export const Paused = {
  Connecting: 1,
  BrokerFull: 2,
  Throttled: 4,
  /** The client sent a 5.0 DISCONNECT: Moat waits for the broker's close, reading nothing more. */
  Disconnected: 8,
} as const

const PAUSED_HOLD_BYTES = 16 * 1024

/** A paused lent side: its framer holds what is read; past PAUSED_HOLD_BYTES its socket stops reading too. */
function holdWhilePaused(framer: Framer, socket: { pause(): unknown }): void {
  framer.stop()
  if (framer.bufferedBytes >= PAUSED_HOLD_BYTES) socket.pause()
}

export class FlowControl {
  /** Sockets, framers and writers are the session's, read through it (no copies: memory per connection). */
  private readonly session: Session
  /** How each side is read (events.ts); the broker's once it is dialled. */
  readonly clientReads: ReadMode
  brokerReads: ReadMode | null = null
  /** Why the client is not read (Paused bits); 0: it is. */
  pausedFor = 0
  /** The broker is not read: the client's write buffer is full. */
  brokerPaused = false

  constructor(session: Session, clientReads: ReadMode) {
    this.session = session
    this.clientReads = clientReads
  }

  get readingClient(): boolean {
    return this.pausedFor === 0
  }

  /** After a lent client chunk went into its framer: a paused client's bytes are held there. */
  clientReadLent(): void {
    if (this.pausedFor !== 0) holdWhilePaused(this.session.clientFramer, this.session.client)
  }

  /** After a lent broker chunk went into its framer: a paused broker's bytes are held there. */
  brokerReadLent(): void {
    if (this.brokerPaused) holdWhilePaused(this.session.brokerFramer, this.session.upstream!)
  }

  /** Writes what the client's frames let through; a full broker buffer pauses the client. */
  flushToBroker(): void {
    const session = this.session
    session.toBroker.flush()
    if (session.upstream!.writableNeedDrain) this.pauseClient(Paused.BrokerFull)
  }

  /** Writes what the broker's frames let through; a full client buffer pauses the broker. */
  flushToClient(): void {
    const session = this.session
    session.toClient.flush()
    if (session.client.writableNeedDrain && !this.brokerPaused) this.pauseBroker()
  }

  /** Stops taking client bytes for `reason` (a lent client socket reads on, up to PAUSED_HOLD_BYTES). */
  pauseClient(reason: number): void {
    this.pausedFor |= reason
    const session = this.session
    if (this.clientReads === 'lent') holdWhilePaused(session.clientFramer, session.client)
    else session.client.pause()
  }

  /** `reason` is over; with none left the client is read again, and what a lent one held goes on to the broker. */
  resumeClient(reason: number): void {
    this.pausedFor &= ~reason
    const session = this.session
    if (this.pausedFor !== 0 || session.phase >= Phase.Closing) return
    session.client.resume()
    // The client's silence while Moat was not reading does not count towards its idle time.
    session.keepalive.heard()
    const framer = session.clientFramer
    if (this.clientReads === 'lent' && framer.isStopped) {
      framer.resume()
      if (session.phase === Phase.Open) this.flushToBroker()
    }
  }

  /** Stops reading the broker while the client does not read. */
  pauseBroker(): void {
    this.brokerPaused = true
    const session = this.session
    if (this.brokerReads === 'lent') session.brokerFramer.stop()
    session.upstream!.pause()
  }

  /**
   * The client drained: the broker is read again, and what a lent one held goes on to the client.
   * Returns true when all it held has gone on and the broker is being read.
   */
  clientDrained(): boolean {
    const session = this.session
    if (!this.brokerPaused || session.phase !== Phase.Open) return false
    this.brokerPaused = false
    session.upstream!.resume()
    const framer = session.brokerFramer
    if (this.brokerReads !== 'lent' || !framer.isStopped) return false
    framer.resume()
    if (session.phase >= Phase.Closing) return false
    this.flushToClient()
    return !this.brokerPaused && !framer.isStopped
  }
}
