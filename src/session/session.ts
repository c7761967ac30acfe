/**
 * One client connection and, once its CONNECT has passed the checks, its upstream connection to the
 * broker. The Session is where bytes (protocol/*) meet policy (checks/*):
 *
 *   client bytes ─▶ Framer ─▶ onFrame ─▶ decode / PUBLISH fast path ─▶ chain ─▶ RunWriter ─▶ broker
 *   client ◀─ RunWriter ◀─ onBrokerFrame ◀─ Framer ◀─ broker bytes
 *
 * - Nothing reaches the broker before CONNECT passed: the upstream is dialled only then, and frames
 *   that arrive meanwhile stay in the client Framer (stopped) while the client socket is paused.
 * - Allowed frames are forwarded as their original bytes, in runs (session/run-writer.ts).
 * - Backpressure: a full write buffer on one side pauses reading on the other; 'drain' resumes it.
 * - Denials are answered in the client's protocol version (protocol/responses.ts).
 */
import type { SessionChecks } from '../checks/chain.js'
import type { CloseReason, DenyReason } from '../checks/reasons.js'
import { Action, type Verdict } from '../checks/verdict.js'
import { PacketDecoder } from '../protocol/decode.js'
import { Framer, FrameError, type FrameSink } from '../protocol/framer.js'
import { ownedCopy } from '../net/lent-reads.js'
import { userPropertyCap } from '../checks/virtual-patches.js'
import { faultAnswer } from './fault-answer.js'
import { PacketType } from '../protocol/packet-type.js'
import { ReasonCode } from '../protocol/reason.js'
import { connackRefusal, disconnectV5 } from '../protocol/responses.js'
import type { ClientCertificate, ClientSocket, ConnInfo, Transport } from './conn-info.js'
import type { ConnectionRefusal } from '../limits/connections.js'
import type { SessionContext } from './context.js'
import type { Ban } from '../cluster/shared-store.js'
import { RunWriter } from './run-writer.js'
import { SessionState } from './state.js'
import { AuditRecord } from './audit-record.js'
import { QosLedger } from './qos-ledger.js'
import { Throttle } from './throttle.js'
import { Admission } from './admission.js'
import { Phase } from './phase.js'
import { KeepaliveWatch } from './keepalive.js'
import { BrokerFrames } from './broker-frames.js'
import { ClientFrames } from './client-frames.js'
import { SubscriptionBook } from './subscription-book.js'
import type { UpstreamSocket } from './upstream.js'
import { listenToClient, listenToUpstream, onConnectTimeout, onDialTimeout, onDisconnectLinger, onLingerTimeout, type ReadMode } from './events.js'

export interface SessionInfo {
  readonly id: number
  readonly listener: string
  readonly remote: string
  readonly clientId: string
  /** The CONNECT user name until the auth check admits the client, then the identity it established (null: anonymous). */
  readonly username: string | null
  readonly authenticatedBy: string | null
  readonly claims: Readonly<Record<string, string>> | null
  readonly groups: readonly string[]
  readonly version: number
  readonly clientWriteBuffer: number
  readonly brokerWriteBuffer: number
  readonly clientReadBuffer: number
  readonly brokerReadBuffer: number
  readonly clientPaused: boolean
  readonly brokerPaused: boolean
  /** How each side is read (events.ts). */
  readonly clientReads: ReadMode
  readonly brokerReads: ReadMode | null
  readonly transport: Transport
  readonly tlsVersion: string | null
  /** The verified client certificate (mutual TLS): subject, CN, SANs, fingerprint. */
  readonly certificate: ClientCertificate | null
}

// Why the client socket is paused (a bit each); it resumes when none is left.
const PAUSED_CONNECTING = 1
const PAUSED_BROKER_FULL = 2
const PAUSED_THROTTLED = 4
/** The client sent a 5.0 DISCONNECT: Moat waits for the broker's close, reading nothing more. */
const PAUSED_DISCONNECTED = 8

/**
 * A paused side read into the lent buffer keeps reading, its bytes held (copied) by its stopped
 * framer, up to this many bytes; then its socket stops reading too. A socket read through 'data'
 * does the same in Node (its paused stream buffers up to the high-water mark, 16 KiB), and reading
 * on is how a client that leaves while Moat waits (an auth backend, a full broker) is noticed:
 * a socket that reads nothing sees no end of stream.
 */
const PAUSED_HOLD_BYTES = 16 * 1024

/** A paused lent side: its framer holds what is read; past PAUSED_HOLD_BYTES its socket stops reading too. */
function holdWhilePaused(framer: Framer, socket: { pause(): unknown }): void {
  framer.stop()
  if (framer.bufferedBytes >= PAUSED_HOLD_BYTES) socket.pause()
}

/** How long a closing session waits for its peers to close before destroying the sockets. */
const LINGER_MS = 2000

export class Session implements FrameSink {
  readonly state: SessionState
  readonly audit: AuditRecord
  readonly admission: Admission
  readonly client: ClientSocket
  private readonly ctx: SessionContext
  private upstream: UpstreamSocket | null = null
  /** Read by the rooms; changed only here. */
  phase: Phase = Phase.AwaitConnect
  private readonly clientFramer: Framer
  private readonly brokerFramer: Framer
  // The parts the rooms share (client-frames.ts, broker-frames.ts), made once per session.
  readonly toBroker = new RunWriter()
  readonly toClient = new RunWriter()
  readonly book = new SubscriptionBook()
  readonly ledger: QosLedger
  /** The check chain of this session, made at CONNECT (admission.ts) and again on each reload. */
  checks: SessionChecks | null = null
  /** Null until `decoding` is first asked for. */
  decoder: PacketDecoder | null = null
  private timer: NodeJS.Timeout | null = null
  private pausedFor = 0
  private brokerPaused = false
  private clientReads: ReadMode = 'stream'
  private brokerReads: ReadMode | null = null
  private clientSentDisconnect = false
  private clientOpen = true
  /** The client half-closed with packets pipelined behind its CONNECT: they go to the broker once it is connected, then the session ends. */
  private clientEndedEarly = false
  /** The broker's end came while its deliveries were held for a slow client (onUpstreamGone). */
  private upstreamEndedEarly = false
  private upstreamOpen = false
  private readonly startedAt = Date.now()
  /** The policy generation this session's checks and caps were built from. */
  private generation: number
  /** User Properties per client property block (a virtual patch's cap, or Infinity). */
  userPropertyCap: number
  private closeReason: CloseReason | null = null
  readonly throttle: Throttle
  private readonly fromClient: ClientFrames
  private readonly fromBroker: BrokerFrames
  readonly keepalive: KeepaliveWatch

  constructor(ctx: SessionContext, client: ClientSocket, conn: ConnInfo, refusal: ConnectionRefusal | null = null) {
    this.ctx = ctx
    this.client = client
    this.state = new SessionState(ctx.nextSessionId(), conn)
    this.audit = new AuditRecord(ctx.logger, this.state, ctx.stats)
    this.ledger = new QosLedger(this.state)
    this.throttle = new Throttle(this, ctx.stats)
    this.admission = new Admission(this, ctx, refusal)
    this.keepalive = new KeepaliveWatch(this)
    const { config, generation } = ctx.policy
    this.generation = generation
    this.userPropertyCap = userPropertyCap(config)
    const maxPacketSize = config.limits.maxPacketSize
    this.clientFramer = new Framer(this, maxPacketSize)
    this.fromClient = new ClientFrames(this, ctx.stats)
    this.fromBroker = new BrokerFrames(this, ctx)
    this.brokerFramer = new Framer(this.fromBroker, maxPacketSize)
    this.toClient.attach(client)

    this.clientReads = listenToClient(this, client)
    this.timer = setTimeout(onConnectTimeout, this.admission.connectWaitMs, this)
    if (ctx.logger.isLevelEnabled('debug')) this.audit.log.debug({ event: 'session_start' }, 'client connected')
  }

  /** The full decoder, for packets off the fast path; made on first use (an idle session never needs one). */
  get decoding(): PacketDecoder {
    return this.decoder ?? (this.decoder = new PacketDecoder(this.state.version))
  }

  // What the session holds of the connection limits, for its owner to release when it ends.
  get refusal(): ConnectionRefusal | null {
    return this.admission.refusal
  }
  get userAdmitted(): boolean {
    return this.admission.userAdmitted
  }
  get fleetSlots(): number {
    return this.admission.fleetSlots
  }

  get isClosed(): boolean {
    return this.phase === Phase.Closed
  }

  /** A snapshot for operators and tests: identity, buffers and whether each side is paused. */
  info(): SessionInfo {
    return {
      id: this.state.id,
      listener: this.state.listener,
      remote: `${this.state.remoteAddress}:${this.state.remotePort}`,
      clientId: this.state.clientId,
      username: this.state.username,
      authenticatedBy: this.state.authenticatedBy,
      claims: this.state.claims,
      groups: this.state.groups,
      version: this.state.version,
      /** Bytes waiting to be written to the client / to the broker. */
      clientWriteBuffer: this.client.writableLength + (this.client.bufferedAmount ?? 0),
      brokerWriteBuffer: this.upstream?.writableLength ?? 0,
      /** Bytes received from the client and not yet handed on (a partial frame, or held while waiting). */
      clientReadBuffer: this.clientFramer.bufferedBytes,
      brokerReadBuffer: this.brokerFramer.bufferedBytes,
      clientPaused: this.pausedFor !== 0,
      brokerPaused: this.brokerPaused,
      clientReads: this.clientReads,
      brokerReads: this.brokerReads,
      transport: this.state.transport,
      tlsVersion: this.state.tlsVersion,
      certificate: this.state.certificate,
    }
  }

  // ---------------------------------------------------------------- client → broker

  /** Client bytes `chunk[0, end)`; `lent`: valid only during this call (net/lent-reads.ts). */
  onClientData(chunk: Buffer, end: number, lent: boolean): void {
    this.ctx.coalescing?.noteRead()
    this.keepalive.heard()
    if (this.generation !== this.ctx.policy.generation) this.adoptPolicy()
    // The first packet MUST be a CONNECT [MQTT-3.1.0-1]: judged on its first byte, before its
    // declared length is waited for (a non-CONNECT opener is Mosquitto's CVE-2023-0809 trigger).
    if (this.phase === Phase.AwaitConnect && this.clientFramer.atBoundary && end > 0 && chunk[0]! >> 4 !== PacketType.Connect) {
      this.admission.refuse('first_packet_not_connect', null, chunk[0]! >> 4)
      return
    }
    this.clientFramer.push(chunk, end, lent)
    if (lent && this.pausedFor !== 0) holdWhilePaused(this.clientFramer, this.client)
    if (this.phase !== Phase.Open) return
    this.toBroker.flush()
    if (this.upstream!.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
  }

  /**
   * A reload happened: packets from now on follow the new policy (new caps, a chain rebuilt from
   * the new config). Protocol state (aliases, identity) lives in SessionState and is kept.
   */
  adoptPolicy(): void {
    if (this.generation === this.ctx.policy.generation || this.phase >= Phase.Closing) return
    const { config, chain, generation } = this.ctx.policy
    this.generation = generation
    this.userPropertyCap = userPropertyCap(config)
    this.fromClient.capChanged(this.userPropertyCap)
    this.clientFramer.maxPacketSize = config.limits.maxPacketSize
    this.brokerFramer.maxPacketSize = config.limits.maxPacketSize
    if (this.checks !== null) {
      this.checks.close(this.state)
      this.checks = chain.forSession(this.state)
      if (this.phase !== Phase.Open) return
      const verdict = this.checks.reviewConnection(this.state)
      if (verdict.action !== Action.Forward) {
        // The new policy takes away the right to connect: 5.0 DISCONNECT 0x87 (or the check's reason).
        this.refusedBy(verdict, PacketType.Connect)
        return
      }
      this.fromClient.reviewSubscriptions()
    }
  }

  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    const phase = this.phase
    if (phase >= Phase.Closing) return false
    const stats = this.ctx.stats
    stats.packetsFromClient[type]! += 1
    stats.bytesFromClient[type]! += end - start
    if (phase === Phase.AwaitConnect) {
      this.clearTimer()
      return this.admission.onConnectFrame(ownedCopy(buf, start, end), type, flags, bodyOffset)
    }
    return this.fromClient.dispatch(buf, start, end, type, flags, bodyOffset)
  }

  /**
   * The client's DISCONNECT (`frame`, checked) goes to the broker. 3.1.1 ends the session; a 5.0
   * broker may answer it (0x82 for a Session Expiry Interval it may not change) before it closes:
   * the client hears that, then the broker's close, or Moat's after LINGER_MS.
   */
  disconnected(frame: Buffer): boolean {
    this.clientSentDisconnect = true
    this.toBroker.addFrame(frame)
    if (this.state.version < 5) {
      this.close('client_disconnect', null)
      return false
    }
    this.toBroker.flush()
    this.upstream!.end()
    this.pauseClient(PAUSED_DISCONNECTED)
    this.keepalive.stop()
    this.clearTimer()
    this.timer = setTimeout(onDisconnectLinger, LINGER_MS, this)
    return false
  }

  onDisconnectLinger(): void {
    this.timer = null
    this.close('client_disconnect', null)
  }

  /**
   * A client broke the protocol or a check refused it with Disconnect: count, log, answer in its
   * version (5.0 DISCONNECT with the reason, only once the broker's CONNACK went out
   * [MQTT-3.14.0-1]), and close; `quiet`: a bare close, as the broker gives for that fault.
   * Returns false so the framer stops.
   */
  violation(why: DenyReason, reason: number, type: number, quiet = false, decider: SessionChecks | null = null): boolean {
    const state = this.state
    this.audit.clientRefused(why, reason, type, decider)
    this.close(why, quiet ? null : faultAnswer(why, reason, type, state.version, state.connected))
    return false
  }

  /** A check's verdict closes the client: the line names the check and its rule. */
  refusedBy(verdict: Verdict, type: number): boolean {
    return this.violation(verdict.why, verdict.reason, type, false, this.checks)
  }

  // ---------------------------------------------------------------- CONNECT

  /**
   * A ban made while this session is open (cluster/fleet.ts): 5.0 DISCONNECT 0x98 Administrative
   * action (0x8A Banned is a CONNACK-only code: DISCONNECT may not carry it), 3.1.1 closed; a
   * session still before its CONNACK gets CONNACK 0x8A.
   */
  banned(ban: Ban): void {
    if (this.phase >= Phase.Closing) return
    const state = this.state
    this.audit.banned(ban)
    const answer = !this.fromBroker.connackSeen
      ? (this.phase === Phase.AwaitConnect ? null : connackRefusal(state.version, ReasonCode.Banned))
      : state.version === 5 && state.connected ? disconnectV5(ReasonCode.AdministrativeAction) : null
    this.close('banned', answer)
  }

  /** The CONNECT is with the checks: the client is not read until the broker connection is up. */
  checking(): void {
    this.phase = Phase.Checking
    this.pauseClient(PAUSED_CONNECTING)
  }

  /** The CONNECT passed: `upstream` is being dialled, ready for MQTT bytes on `readyEvent`. */
  dialing(upstream: UpstreamSocket, readyEvent: string, timeoutMs: number): void {
    this.phase = Phase.Dialing
    this.brokerReads = listenToUpstream(this, upstream, readyEvent)
    this.upstream = upstream
    this.upstreamOpen = true
    this.timer = setTimeout(onDialTimeout, timeoutMs, this)
  }

  onUpstreamConnect(): void {
    if (this.phase !== Phase.Dialing) return
    this.clearTimer()
    this.phase = Phase.Open
    const upstream = this.upstream!
    this.toBroker.attach(upstream)
    this.toBroker.write(this.admission.connected())
    this.clientFramer.resume()
    if (this.phase !== Phase.Open) return
    if (this.clientEndedEarly) {
      this.close('client_closed', null) // what it pipelined is on its way to the broker
      return
    }
    this.toBroker.flush()
    if (upstream.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
    this.resumeClient(PAUSED_CONNECTING)
  }

  // ---------------------------------------------------------------- broker → client

  /** Broker bytes `chunk[0, end)`; `lent`: valid only during this call (net/lent-reads.ts). */
  onUpstreamData(chunk: Buffer, end: number, lent: boolean): void {
    this.ctx.coalescing?.noteRead()
    this.brokerFramer.push(chunk, end, lent)
    if (lent && this.brokerPaused) holdWhilePaused(this.brokerFramer, this.upstream!)
    if (this.phase >= Phase.Closing) return
    this.toClient.flush()
    if (this.client.writableNeedDrain && !this.brokerPaused) this.pauseBroker()
  }

  /** Moat reads the client (no pause for any reason). */
  get readingClient(): boolean {
    return this.pausedFor === 0
  }

  /** A check said "not now": the frame waits in the Throttle, and the client is not read meanwhile. */
  hold(frame: Buffer, type: number, flags: number, bodyOffset: number): boolean {
    this.throttle.hold(frame, type, flags, bodyOffset, this.state.throttleUntil)
    this.pauseClient(PAUSED_THROTTLED)
    return false
  }

  /** The held frame's wait is over: it is checked again, then what the client sent behind it. */
  onThrottleEnd(): void {
    if (this.phase !== Phase.Open) return
    // Not reading the client means no chunk brings a reload in: look here.
    if (this.generation !== this.ctx.policy.generation) this.adoptPolicy()
    if (this.phase !== Phase.Open) return // the reload closed the session, and close() cancelled the wait
    const throttle = this.throttle
    if (throttle.replay(this.fromClient)) this.clientFramer.resume()
    if (this.phase !== Phase.Open) return
    this.toBroker.flush()
    if (this.upstream!.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
    if (throttle.settle()) this.resumeClient(PAUSED_THROTTLED)
  }

  /** The broker went away (or, while dialling, could not be reached). */
  onUpstreamGone(why: CloseReason, detail: string): void {
    if (this.phase >= Phase.Closing) return
    if (this.phase === Phase.Dialing) {
      this.admission.dialFailed(detail)
      return
    }
    // The broker closed while the client was not reading: a lent upstream reads on while paused
    // (PAUSED_HOLD_BYTES), so the end can come behind deliveries the stopped broker framer holds.
    // They go on to the client once it drains (onClientDrain), then the session ends, as with a
    // 'data' socket, whose end waits behind what its stream buffered.
    if (why === 'upstream_closed' && this.brokerPaused && this.brokerFramer.isStopped && this.brokerFramer.bufferedBytes > 0) {
      this.upstreamEndedEarly = true
      this.toBroker.detach()
      return
    }
    // The broker closed (on purpose or not): the client sees the close the broker made, with
    // whatever the broker sent before it, and no answer the broker did not give.
    if (this.clientSentDisconnect) {
      this.close('client_disconnect', null)
      return
    }
    this.audit.log.info({ event: 'upstream_gone', reason: why, error: detail }, 'broker connection ended')
    this.close(why, null)
  }

  // ---------------------------------------------------------------- framing errors, timers, backpressure

  onFrameError(error: FrameError, declaredSize: number): void {
    if (this.phase >= Phase.Closing) return
    if (error === FrameError.TooLarge) {
      this.audit.tooLarge(declaredSize, ReasonCode.PacketTooLarge)
      // 5.0: DISCONNECT 0x95 [MQTT-3.2.2-15 spirit]; before CONNACK: CONNACK 0x95.
      const answer = this.state.version !== 5 ? null
        : this.state.connected ? disconnectV5(ReasonCode.PacketTooLarge)
        : this.phase === Phase.AwaitConnect ? null : connackRefusal(5, ReasonCode.PacketTooLarge)
      this.close('packet_too_large', answer)
      return
    }
    this.violation('malformed_packet', ReasonCode.MalformedPacket, -1)
  }

  onConnectTimeout(): void {
    this.timer = null
    if (this.phase !== Phase.AwaitConnect) return
    this.audit.connectTimeout(this.clientFramer.bufferedBytes)
    this.close('connect_timeout', null)
  }

  onClientDrain(): void {
    if (!this.brokerPaused || this.phase !== Phase.Open) return
    this.brokerPaused = false
    this.upstream!.resume()
    // What a lent upstream read while paused (PAUSED_HOLD_BYTES) goes on to the client now.
    if (this.brokerReads !== 'lent' || !this.brokerFramer.isStopped) return
    this.brokerFramer.resume()
    if (this.phase >= Phase.Closing) return
    this.toClient.flush()
    if (this.client.writableNeedDrain) this.pauseBroker()
    // The broker closed while paused (onUpstreamGone): all it sent before has gone on; the session ends.
    else if (this.upstreamEndedEarly && !this.brokerFramer.isStopped) {
      this.upstreamEndedEarly = false
      this.onUpstreamGone('upstream_closed', 'broker closed the connection')
    }
  }

  onUpstreamDrain(): void {
    this.resumeClient(PAUSED_BROKER_FULL)
  }

  /** Stops taking broker bytes while the client does not read (a lent upstream reads on, up to PAUSED_HOLD_BYTES). */
  private pauseBroker(): void {
    this.brokerPaused = true
    if (this.brokerReads === 'lent') holdWhilePaused(this.brokerFramer, this.upstream!)
    else this.upstream!.pause()
  }

  /** Stops taking client bytes for `reason` (a lent client socket reads on, up to PAUSED_HOLD_BYTES). */
  private pauseClient(reason: number): void {
    this.pausedFor |= reason
    if (this.clientReads === 'lent') holdWhilePaused(this.clientFramer, this.client)
    else this.client.pause()
  }

  private resumeClient(reason: number): void {
    this.pausedFor &= ~reason
    if (this.pausedFor !== 0 || this.phase >= Phase.Closing) return
    this.client.resume()
    // The client's silence while Moat was not reading does not count towards its idle time.
    this.keepalive.heard()
    // What a lent client socket read while paused (PAUSED_HOLD_BYTES) goes on to the broker now.
    if (this.clientReads === 'lent' && this.clientFramer.isStopped) {
      this.clientFramer.resume()
      if (this.phase !== Phase.Open) return
      this.toBroker.flush()
      if (this.upstream!.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
    }
    // The client ended while paused (onClientEnded): all it sent before has gone on; the session ends.
    if (this.clientEndedEarly && this.phase === Phase.Open && this.pausedFor === 0 && !this.clientFramer.isStopped) {
      this.close(this.clientSentDisconnect ? 'client_disconnect' : 'client_closed', null)
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
  }

  // ---------------------------------------------------------------- closing

  /** Graceful shutdown of the proxy: 5.0 clients learn why (0x8B). */
  shutdown(): void {
    if (this.phase >= Phase.Closing) return
    const state = this.state
    let answer: Buffer | null = null
    if (this.phase === Phase.Checking || this.phase === Phase.Dialing) answer = connackRefusal(state.version, ReasonCode.ServerShuttingDown)
    else if (state.version === 5 && state.connected) answer = disconnectV5(ReasonCode.ServerShuttingDown)
    this.close('shutdown', answer)
  }

  /**
   * Ends the session: frames already checked still go to the broker, then both sides are ended
   * (the client after `answer`, if any). The client keeps being read, and what it sends discarded,
   * until it closes or LINGER_MS passes, so the answer is not lost to a reset.
   */
  close(why: CloseReason, answer: Buffer | null): void {
    if (this.phase >= Phase.Closing) return
    const wasDialing = this.phase === Phase.Dialing
    this.phase = Phase.Closing
    this.closeReason = why
    this.clearTimer()
    this.keepalive.stop()
    this.throttle.cancel()
    this.clientFramer.reset()
    this.brokerFramer.reset()
    this.toBroker.flush()
    this.toClient.flush()
    this.checks?.close(this.state)
    this.ctx.stats.countClose(why)

    const upstream = this.upstream
    if (upstream !== null && this.upstreamOpen) {
      if (wasDialing) upstream.destroy()
      else upstream.end()
    }
    const client = this.client
    if (this.clientOpen) {
      if (answer !== null) this.toClient.write(answer)
      client.end()
      client.resume()
    }
    this.timer = setTimeout(onLingerTimeout, LINGER_MS, this)
    this.timer.unref()
    this.maybeFinished()
  }

  onLingerTimeout(): void {
    this.timer = null
    this.client.destroy()
    this.upstream?.destroy()
  }

  /**
   * The client half-closed or failed: end the session (the broker sees the connection drop). A
   * clean half-close while CONNECT is still being checked or the broker dialled, with packets
   * pipelined behind the CONNECT, means "done sending", not "abort": as a broker reached directly
   * would, Moat still delivers what was sent (if the client is admitted), then ends the session.
   */
  onClientEnded(why: CloseReason): void {
    if (why === 'client_closed' && (this.phase === Phase.Checking || this.phase === Phase.Dialing) && this.clientFramer.bufferedBytes > 0) {
      this.clientEndedEarly = true
      return
    }
    // The same once open, while Moat is not taking the client's bytes (throttled, broker full): a
    // lent client socket reads on while paused (PAUSED_HOLD_BYTES), so its end can come behind
    // bytes the stopped framer holds. They go on when the pause is over, then the session ends
    // (resumeClient), as with a 'data' socket, whose end waits behind what its stream buffered.
    // Nothing more is written to the client: it is gone, and its socket's writable side ends.
    if (why === 'client_closed' && this.phase === Phase.Open && this.pausedFor !== 0 && this.clientFramer.bufferedBytes > 0) {
      this.clientEndedEarly = true
      this.toClient.detach()
      return
    }
    if (this.phase < Phase.Closing) this.close(this.clientSentDisconnect ? 'client_disconnect' : why, null)
  }

  onClientClosed(): void {
    this.clientOpen = false
    if (this.clientEndedEarly && this.phase < Phase.Closing) return
    if (this.phase < Phase.Closing) this.close(this.clientSentDisconnect ? 'client_disconnect' : 'client_closed', null)
    else this.maybeFinished()
  }

  onUpstreamClosed(): void {
    this.upstreamOpen = false
    if (this.upstreamEndedEarly && this.phase < Phase.Closing) return
    if (this.phase < Phase.Closing) this.onUpstreamGone('upstream_closed', 'connection closed')
    else this.maybeFinished()
  }

  private maybeFinished(): void {
    if (this.phase !== Phase.Closing || this.clientOpen || this.upstreamOpen) return
    this.phase = Phase.Closed
    this.clearTimer()
    this.ctx.stats.sessionsOpen -= 1
    // Bytes written straight to the descriptor (run-writer.ts) are not in client.bytesWritten.
    this.audit.ended(this.closeReason, this.client.bytesRead, this.toClient.bytes, Date.now() - this.startedAt)
    this.ctx.sessionEnded(this)
  }
}
