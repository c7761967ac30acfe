/**
 * The keepalive as Moat enforces it: a client silent for 1.5 times its keepalive is closed
 * [MQTT-3.1.2-24]. At a keepalive the broker knows, the broker's own timeout comes first and Moat
 * passes its close on; Moat's check, a little later, is the backstop for a broker that does not
 * enforce it. Where Moat's maxKeepalive lowered the keepalive, Moat decides alone and tells a 5.0
 * client why.
 */
import { nowMs } from '../limits/token-bucket.js'
import { ReasonCode } from '../protocol/reason.js'
import { disconnectV5 } from '../protocol/responses.js'
import { Phase } from './phase.js'
import type { Session } from './session.js'

/**
 * How long after the broker's own keepalive timeout Moat closes a silent client itself. Mosquitto
 * 2.0 looks for expired keepalives only every 6 s or so, so its timeout may come up to that late:
 * a shorter grace would have Moat close first, and the broker see a close instead of its timeout.
 */
const IDLE_GRACE_MS = 10_000

export class KeepaliveWatch {
  private readonly session: Session
  private timer: NodeJS.Timeout | null = null
  /** 0: no keepalive (nothing is watched). */
  private idleMs = 0
  /** When the client was last heard, or last read again after a pause (nowMs clock). */
  private lastHeard = 0
  /** Moat's maxKeepalive set the keepalive: Moat's check, not the broker's, decides. */
  private lowered = false

  constructor(session: Session) {
    this.session = session
  }

  /** From the broker's CONNACK on: the client got `keepalive` seconds (> 0). */
  start(keepalive: number, lowered: boolean): void {
    this.idleMs = keepalive * 1500 + (lowered ? 0 : IDLE_GRACE_MS)
    this.lowered = lowered
    this.lastHeard = nowMs()
    this.stop()
    this.timer = setTimeout(onCheck, this.idleMs, this)
  }

  /** Bytes came from the client, or Moat reads it again after a pause: its silence starts now. */
  heard(): void {
    if (this.idleMs !== 0) this.lastHeard = nowMs()
  }

  stop(): void {
    if (this.timer === null) return
    clearTimeout(this.timer)
    this.timer = null
  }

  check(): void {
    this.timer = null
    const session = this.session
    if (session.phase !== Phase.Open) return
    const idle = nowMs() - this.lastHeard
    // While Moat itself is not reading the client (throttle, backpressure) silence is not the client's fault.
    const reading = session.flow.readingClient
    if (reading && idle >= this.idleMs) {
      const state = session.state
      session.audit.log.warn({ event: 'client_refused', reason: 'idle_timeout', keepalive: state.keepalive }, 'closing idle client')
      // Past a keepalive the broker knows, the broker has failed to close the client: Moat closes as it would, bare.
      session.close('idle_timeout', this.lowered && state.version === 5 ? disconnectV5(ReasonCode.KeepAliveTimeout) : null)
      return
    }
    this.timer = setTimeout(onCheck, reading ? this.idleMs - idle : this.idleMs, this)
  }
}

function onCheck(watch: KeepaliveWatch): void {
  watch.check()
}
