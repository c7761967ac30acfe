/**
 * How a session follows its peers' ends. The client leaves with a DISCONNECT, by half-closing, or
 * by failing; the broker by closing or failing. Whatever a peer sent before its end still goes on:
 *
 * - A client's clean half-close with packets pipelined behind its CONNECT means "done sending", not
 *   "abort": as a broker reached directly would, Moat still delivers them (if the client is
 *   admitted), then ends the session.
 * - A paused lent client reads on while Moat does not take its bytes (flow-control.ts), so its end
 *   can come behind bytes its stopped framer holds: they go on when the pause is over, then the
 *   session ends, as with a 'data' socket, whose end waits behind what its stream buffered. The
 *   broker's side stops reading at once, but a 'data' socket's buffer can still bring its end
 *   behind deliveries held for a slow client: the same applies.
 * - The broker's close ends the session with the close the broker made, and no answer it did not give.
 */
import type { CloseReason } from '../stats/reasons.js'
import { Paused } from './flow-control.js'
import { Phase } from './phase.js'
import type { Session } from './session.js'

/** How long Moat waits for the broker's close after a 5.0 client's DISCONNECT. */
const DISCONNECT_WAIT_MS = 2000

export class PeerEnds {
  private readonly session: Session
  private timer: NodeJS.Timeout | null = null
  /** The client sent a DISCONNECT: however the session then ends, it ends for that reason. */
  private clientSentDisconnect = false
  /** The client's end came behind bytes still held for it: they go on first. */
  clientEndedEarly = false
  /** The broker's end came behind deliveries held for a slow client. */
  private upstreamEndedEarly = false

  constructor(session: Session) {
    this.session = session
  }

  /** The reason of a session the client ended. */
  private get clientReason(): CloseReason {
    return this.clientSentDisconnect ? 'client_disconnect' : 'client_closed'
  }

  /**
   * The client's DISCONNECT (`frame`, checked) goes to the broker. 3.1.1 ends the session; a 5.0
   * broker may answer it (0x82 for a Session Expiry Interval it may not change) before it closes:
   * the client hears that, then the broker's close, or Moat's after DISCONNECT_WAIT_MS.
   */
  disconnected(frame: Buffer): boolean {
    const session = this.session
    this.clientSentDisconnect = true
    session.toBroker.addFrame(frame)
    if (session.state.version < 5) {
      session.close('client_disconnect', null)
      return false
    }
    session.toBroker.flush()
    session.upstream!.end()
    session.flow.pauseClient(Paused.Disconnected)
    session.keepalive.stop()
    this.timer = setTimeout(onDisconnectWaitOver, DISCONNECT_WAIT_MS, this)
    return false
  }

  disconnectWaitOver(): void {
    this.timer = null
    this.session.close('client_disconnect', null)
  }

  /** The session closes (the wait for the broker's close, if any, is over). */
  cancel(): void {
    if (this.timer === null) return
    clearTimeout(this.timer)
    this.timer = null
  }

  /** The client half-closed ('client_closed') or failed ('client_error'). */
  clientEnded(why: CloseReason): void {
    const session = this.session
    const phase = session.phase
    const held = session.clientFramer.bufferedBytes > 0
    if (why === 'client_closed' && held && (phase === Phase.Checking || phase === Phase.Dialing)) {
      this.clientEndedEarly = true
      return
    }
    // Once open, nothing more is written to the client: it is gone, and its socket's writable side ends.
    if (why === 'client_closed' && held && phase === Phase.Open && !session.flow.readingClient) {
      this.clientEndedEarly = true
      session.toClient.detach()
      return
    }
    session.close(this.clientSentDisconnect ? 'client_disconnect' : why, null)
  }

  /** The client socket closed, the session still open. */
  clientClosed(): void {
    if (!this.clientEndedEarly) this.session.close(this.clientReason, null)
  }

  /** The client is read again with nothing held: a client that ended meanwhile is done. */
  clientCaughtUp(): void {
    const session = this.session
    if (this.clientEndedEarly && session.phase === Phase.Open && session.flow.readingClient && !session.clientFramer.isStopped) {
      session.close(this.clientReason, null)
    }
  }

  /** The broker went away (or, while dialling, could not be reached). */
  upstreamGone(why: CloseReason, detail: string): void {
    const session = this.session
    if (session.phase >= Phase.Closing) return
    if (session.phase === Phase.Dialing) {
      session.admission.dialFailed(detail)
      return
    }
    const framer = session.brokerFramer
    if (why === 'upstream_closed' && session.flow.brokerPaused && framer.isStopped && framer.bufferedBytes > 0) {
      this.upstreamEndedEarly = true
      session.toBroker.detach()
      return
    }
    if (this.clientSentDisconnect) {
      session.close('client_disconnect', null)
      return
    }
    session.audit.log.info({ event: 'upstream_gone', reason: why, error: detail }, 'broker connection ended')
    session.close(why, null)
  }

  /** The broker socket closed, the session still open. */
  upstreamClosed(): void {
    if (!this.upstreamEndedEarly) this.upstreamGone('upstream_closed', 'connection closed')
  }

  /** All the broker sent before its end has gone on to the client: a broker that ended meanwhile is done. */
  upstreamCaughtUp(): void {
    if (!this.upstreamEndedEarly) return
    this.upstreamEndedEarly = false
    this.upstreamGone('upstream_closed', 'broker closed the connection')
  }
}

function onDisconnectWaitOver(ends: PeerEnds): void {
  ends.disconnectWaitOver()
}
