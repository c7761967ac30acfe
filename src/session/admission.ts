/**
 * From the client's CONNECT to the broker connection: the CONNECT is read and judged (bans, the
 * check chain, which may wait for an auth backend, the per-user connection limit, the fleet-wide
 * counts), then the broker is dialled and gets the CONNECT first. Nothing reaches the broker
 * before all of that passed; a refusal is answered in the client's protocol version.
 *
 * Also what the session holds of the connection limits, which its owner releases when it ends.
 */
import type { IConnectPacket } from 'mqtt-packet'
import type { SessionChecks } from '../checks/chain.js'
import type { CloseReason } from '../stats/reasons.js'
import { Action, type Verdict } from '../checks/verdict.js'
import { upstreamConnect } from '../auth/upstream-credentials.js'
import type { FleetVerdict } from '../fleet/fleet.js'
import type { ConnectionRefusal } from '../limits/connections.js'
import { connectDecoder, ConnectProtocol, readConnectLevel } from '../protocol/decode.js'
import { PacketType } from '../protocol/packet-type.js'
import { TOO_MANY_USER_PROPERTIES } from '../protocol/properties.js'
import { ReasonCode } from '../protocol/reason.js'
import { CONNACK_UNACCEPTABLE_PROTOCOL, connackRefusal } from '../protocol/responses.js'
import type { SessionContext } from './context.js'
import { connectRefusal } from './fault-answer.js'
import { Phase } from './phase.js'
import type { Session } from './session.js'
import type { SessionState } from '../client/session-state.js'
import { dialUpstream, upstreamReadyEvent, type LocalEnd } from './upstream.js'

/** How a connection refused at accept time is answered once its CONNECT tells the version. */
const REFUSAL_CODES: Record<ConnectionRefusal, number> = {
  connection_rate: ReasonCode.ConnectionRateExceeded,
  too_many_connections: ReasonCode.QuotaExceeded,
  server_overloaded: ReasonCode.ServerBusy,
  banned: ReasonCode.Banned,
}

/**
 * Dials per CONNECT when the broker does not answer in `upstream.connectTimeout`: a broker whose
 * accept queue overflowed (a fleet reconnecting at once) drops the SYN, and the kernel would send
 * it again only after seconds; a fresh dial is a fresh SYN. A refusal is answered at once.
 */
const DIAL_ATTEMPTS = 3

/** How long a connection refused at accept time may take to send the CONNECT its refusal answers. */
const REFUSED_CONNECT_WAIT_MS = 1000

/** Fleet admission itself never rejects; this is the belt to its braces: fail closed. */
const FLEET_FAILED: FleetVerdict = Object.freeze({ refusal: Object.freeze({ why: 'check_failed' as const, reason: ReasonCode.ImplementationSpecificError }), slots: 0 })

/** The return / reason code of a CONNACK Moat writes. */
function connackCode(connack: Buffer): number {
  return connack[3] ?? 0
}

export class Admission {
  private readonly session: Session
  /** A refusal decided at accept time (Moat.accept), answered once the CONNECT tells the version. */
  readonly refusal: ConnectionRefusal | null
  /** This session holds a connection slot for its user name (ConnectionLimiter). */
  userAdmitted = false
  /** Slots held in the shared store (fleet/fleet.ts SLOT_*). */
  fleetSlots = 0
  /** The CONNECT as the broker will get it, and (until it is judged) decoded. */
  private frame: Buffer | null = null
  private packet: IConnectPacket | null = null
  private dialStartedAt = 0
  private dials = 0

  constructor(session: Session, refusal: ConnectionRefusal | null) {
    this.session = session
    this.refusal = refusal
  }

  private get ctx(): SessionContext {
    return this.session.ctx
  }

  private get state(): SessionState {
    return this.session.state
  }

  /** How long the client has to send its CONNECT: a refused connection gets a short while (to be told why), not the full timeout. */
  get connectWaitMs(): number {
    const timeout = this.ctx.policy.config.limits.connectTimeoutMs
    return this.refusal === null ? timeout : Math.min(timeout, REFUSED_CONNECT_WAIT_MS)
  }

  /** The client's first frame (a Buffer of its own). Returns false: the framer stops until the session opens. */
  onConnectFrame(frame: Buffer, type: number, flags: number, bodyOffset: number): boolean {
    // The first packet from the client MUST be a CONNECT [MQTT-3.1.0-1].
    if (type !== PacketType.Connect) return this.refuse('first_packet_not_connect', null, type)
    if (flags !== 0) return this.refuse('reserved_flags', null, type)
    const level = readConnectLevel(frame, bodyOffset)
    if (level === -ConnectProtocol.BadName) return this.refuse('invalid_protocol_name', null, type)
    // Unsupported protocol level: CONNACK 0x01, then close [MQTT-3.1.2-2].
    if (level === -ConnectProtocol.UnsupportedLevel) return this.refuse('unsupported_protocol_version', CONNACK_UNACCEPTABLE_PROTOCOL, type)
    if (level < 0) return this.refuse('malformed_packet', null, type)
    const state = this.state
    state.version = level
    if (this.refusal !== null) {
      // Moat.accept logged the first refusal; a flood of them must not flood the log.
      this.session.audit.log.debug({ event: 'connect_refused', reason: this.refusal }, 'refusing client')
      this.session.close(this.refusal, connackRefusal(level, REFUSAL_CODES[this.refusal]))
      return false
    }
    const packet = connectDecoder.decode(frame, this.session.userPropertyCap) as IConnectPacket | null
    if (packet === null) {
      if (connectDecoder.lastError === TOO_MANY_USER_PROPERTIES) return this.refuse('too_many_user_properties', connackRefusal(level, ReasonCode.QuotaExceeded), type)
      this.ctx.stats.decodeErrors[PacketType.Connect]! += 1
      return this.refuse('malformed_packet', null, type)
    }
    state.clientId = packet.clientId
    state.username = packet.username ?? null
    state.keepalive = packet.keepalive ?? 0
    state.cleanStart = packet.clean ?? true
    state.clientAcceptsAliases = level === 5 && (packet.properties?.topicAliasMaximum ?? 0) > 0
    const checks = this.session.checks = this.ctx.policy.chain.forSession(state)
    // Bans (address, user name, client id) before any backend is asked (fleet/fleet.ts).
    const banned = this.ctx.fleet?.atConnect(state.remoteAddress, state.username, state.clientId) ?? null
    if (banned !== null) return this.refuse(banned.why, connackRefusal(level, banned.reason), type)
    this.frame = frame
    this.packet = packet
    this.session.checking()
    const verdict = checks.runConnect(packet, state)
    if (verdict instanceof Promise) verdict.then(onConnectVerdict.bind(null, this), onConnectVerdict.bind(null, this, null))
    else this.onVerdict(verdict)
    return false
  }

  /** The check chain's verdict on the CONNECT (null: its promise failed). */
  onVerdict(verdict: Verdict | null): void {
    if (this.session.phase !== Phase.Checking) return
    const state = this.state
    if (verdict === null || verdict.action !== Action.Forward) {
      this.packet = null
      this.refuse(verdict?.why ?? 'check_failed', connectRefusal(state.version, verdict?.reason ?? ReasonCode.ImplementationSpecificError), PacketType.Connect, this.session.checks)
      return
    }
    const username = state.username
    if (username !== null && this.ctx.limiter !== undefined) {
      if (!this.ctx.limiter.admitUser(username)) {
        this.refuse('too_many_connections', connackRefusal(state.version, ReasonCode.QuotaExceeded), PacketType.Connect)
        return
      }
      this.userAdmitted = true
    }
    // Fleet-wide counts (a shared store): the CONNECT waits for them; the local limits above are in front.
    const fleet = this.ctx.fleet
    if (fleet !== undefined && fleet.needsAdmission(username)) {
      fleet.admit(state.remoteAddress, username).then(onFleetVerdict.bind(null, this), onFleetVerdict.bind(null, this, FLEET_FAILED))
      return
    }
    this.admitted()
  }

  onFleetVerdict(verdict: FleetVerdict): void {
    const state = this.state
    if (this.session.phase !== Phase.Checking) {
      this.ctx.fleet!.release(state.remoteAddress, state.username, verdict.slots)
      return
    }
    this.fleetSlots = verdict.slots
    if (verdict.refusal !== null) {
      this.packet = null
      this.refuse(verdict.refusal.why, connackRefusal(state.version, verdict.refusal.reason), PacketType.Connect)
      return
    }
    this.admitted()
  }

  private admitted(): void {
    this.session.audit.admitted()
    // What the broker sees of the credentials (auth.upstreamCredentials): the one deliberate rewrite.
    const upstreamFrame = upstreamConnect(this.frame!, this.packet!, this.ctx.policy.config.auth?.upstreamCredentials ?? 'passthrough')
    this.packet = null
    if (upstreamFrame === null) {
      this.refuse('check_failed', connackRefusal(this.state.version, ReasonCode.ImplementationSpecificError), PacketType.Connect)
      return
    }
    this.frame = upstreamFrame
    this.dialStartedAt = performance.now()
    this.dial()
  }

  private dial(): void {
    const config = this.ctx.policy.config.upstream
    this.dials++
    const upstream = (this.ctx.dial ?? dialUpstream)(config, this.state, this.session.client as LocalEnd)
    this.session.dialing(upstream, upstreamReadyEvent(config), config.connectTimeoutMs)
  }

  /** The dial took longer than upstream.connectTimeout: dialled again, or failed after the last attempt. */
  dialTimedOut(): void {
    if (this.session.phase !== Phase.Dialing) return
    if (this.dials >= DIAL_ATTEMPTS) {
      this.dialFailed(`connect timeout (${this.dials} attempts)`)
      return
    }
    this.ctx.stats.upstreamConnectFailures += 1 // every attempt that failed counts (moat_upstream_connect_failures_total)
    this.session.audit.log.debug({ event: 'upstream_dial_retry', attempt: this.dials }, 'broker did not answer in time: dialling again')
    this.session.abandonDial()
    this.dial()
  }

  /**
   * The broker connection is up: returns the CONNECT it must get first, exactly as the client sent
   * it (or as auth.upstreamCredentials deliberately rewrote it).
   */
  connected(): Buffer {
    const stats = this.ctx.stats
    stats.upstreamConnects += 1
    stats.upstreamConnectSeconds += (performance.now() - this.dialStartedAt) / 1000
    const frame = this.frame!
    this.frame = null
    return frame
  }

  /** The broker could not be reached (refused, timed out, gone while dialling). */
  dialFailed(detail: string): void {
    if (this.session.phase !== Phase.Dialing) return
    this.ctx.stats.upstreamConnectFailures += 1
    this.ctx.dialFailures.failed(this.session.audit.log, detail)
    // 3.1.1: CONNACK 3 (server unavailable); 5.0: CONNACK 0x88 (a DISCONNECT may not precede CONNACK).
    this.session.close('upstream_unavailable', connackRefusal(this.state.version, ReasonCode.ServerUnavailable))
  }

  /** `decider`: the checks whose verdict refused, null when Moat itself did. */
  refuse(why: CloseReason, answer: Buffer | null, type: number, decider: SessionChecks | null = null): boolean {
    this.session.audit.connectRefused(why, answer === null ? undefined : connackCode(answer), type, decider)
    this.session.close(why, answer)
    return false
  }
}

function onConnectVerdict(admission: Admission, verdict: Verdict | null): void {
  admission.onVerdict(verdict)
}

function onFleetVerdict(admission: Admission, verdict: FleetVerdict): void {
  admission.onFleetVerdict(verdict)
}
