/**
 * One client connection and, once its CONNECT has passed the checks, its upstream connection to the
 * broker: where bytes (protocol/*) meet policy (checks/*).
 *
 *   client bytes ─▶ Framer ─▶ onFrame ─▶ ClientFrames ─▶ chain ─▶ RunWriter ─▶ broker
 *   client ◀─ RunWriter ◀─ BrokerFrames ◀─ Framer ◀─ broker bytes
 *
 * The Session holds the lifecycle (await CONNECT, checking, dialling, open, closing, closed), the
 * sockets and the routing of bytes and frames. What it relies on is a room of its own, made once
 * per session: admission, client-frames, broker-frames, qos-ledger, throttle, keepalive,
 * flow-control (pauses, backpressure), peer-ends, audit-record (every log line about the session).
 * Nothing reaches the broker before CONNECT passed, and allowed frames go on as their own bytes.
 */
import type { SessionChecks } from '../checks/chain.js'
import type { CloseReason } from '../stats/reasons.js'
import { Action } from '../checks/verdict.js'
import { userPropertyCap } from '../checks/virtual-patches.js'
import type { Ban } from '../fleet/shared-store.js'
import type { ConnectionRefusal } from '../limits/connections.js'
import { ownedCopy } from '../net/lent-reads.js'
import { PacketDecoder } from '../protocol/decode.js'
import { Framer, FrameError, type FrameSink } from '../protocol/framer.js'
import { PacketType } from '../protocol/packet-type.js'
import { ReasonCode } from '../protocol/reason.js'
import { Admission } from './admission.js'
import { AuditRecord } from './audit-record.js'
import { BrokerFrames } from './broker-frames.js'
import { ClientFrames } from './client-frames.js'
import type { ClientSocket, ConnInfo } from '../client/conn-info.js'
import type { SessionContext } from './context.js'
import { listenToClient, listenToUpstream, onConnectTimeout, onDialTimeout, onLingerTimeout } from './events.js'
import { bannedAnswer, kickedAnswer, shutdownAnswer, tooLargeAnswer } from './fault-answer.js'
import { FlowControl, Paused } from './flow-control.js'
import { KeepaliveWatch } from './keepalive.js'
import { PeerEnds } from './peer-ends.js'
import { Phase } from './phase.js'
import { QosLedger } from './qos-ledger.js'
import { RunWriter } from './run-writer.js'
import { sessionInfo, type SessionInfo } from './session-info.js'
import { SessionState } from '../client/session-state.js'
import { SubscriptionBook } from './subscription-book.js'
import { Throttle } from './throttle.js'
import type { UpstreamSocket } from './upstream.js'

export type { SessionInfo } from './session-info.js'

function ignoreError(): void {}

/** How long a closing session waits for its peers to close before destroying the sockets. */
const LINGER_MS = 2000

export class Session implements FrameSink {
  readonly state: SessionState
  readonly client: ClientSocket
  /** The broker connection, from the dial on. */
  upstream: UpstreamSocket | null = null
  readonly ctx: SessionContext
  /** Read by the rooms; changed only here. */
  phase: Phase = Phase.AwaitConnect
  // What the rooms share.
  readonly toBroker = new RunWriter()
  readonly toClient = new RunWriter()
  readonly book = new SubscriptionBook()
  /** The check chain, made at CONNECT (admission.ts) and again on each reload. */
  checks: SessionChecks | null = null
  /** The full decoder, for packets off the fast path; null until `decoding` first makes it. */
  decoder: PacketDecoder | null = null
  /** User Properties per client property block (a virtual patch's cap, or Infinity). */
  userPropertyCap: number
  // The rooms.
  readonly audit: AuditRecord
  /** Also what the session holds of the connection limits, for its owner to release when it ends. */
  readonly admission: Admission
  readonly ledger: QosLedger
  /** Made when the session is first throttled (most never are). */
  throttled: Throttle | null = null
  readonly keepalive: KeepaliveWatch
  readonly flow: FlowControl
  readonly ends: PeerEnds
  private readonly fromClient: ClientFrames
  private readonly fromBroker: BrokerFrames
  readonly clientFramer: Framer
  readonly brokerFramer: Framer
  /** The one timer of the lifecycle: CONNECT wait, dial, linger. */
  private timer: NodeJS.Timeout | null = null
  /** The policy generation this session's checks and caps were built from. */
  private generation: number
  private clientOpen = true
  private upstreamOpen = false
  private closeReason: CloseReason | null = null
  /** When the client connection was accepted (the sessions view's "connected since"). */
  readonly startedAt = Date.now()

  constructor(ctx: SessionContext, client: ClientSocket, conn: ConnInfo, refusal: ConnectionRefusal | null = null) {
    this.ctx = ctx
    this.client = client
    const state = this.state = new SessionState(ctx.nextSessionId(), conn)
    const { config, generation } = ctx.policy
    this.generation = generation
    this.userPropertyCap = userPropertyCap(config)
    this.audit = new AuditRecord(ctx.logger, state, ctx.stats)
    this.admission = new Admission(this, refusal)
    this.ledger = new QosLedger(state)
    this.keepalive = new KeepaliveWatch(this)
    this.fromClient = new ClientFrames(this)
    this.fromBroker = new BrokerFrames(this)
    this.clientFramer = new Framer(this, config.limits.maxPacketSize)
    this.brokerFramer = new Framer(this.fromBroker, config.limits.maxPacketSize)
    this.toClient.attach(client)
    this.flow = new FlowControl(this, listenToClient(this, client))
    this.ends = new PeerEnds(this)
    this.timer = setTimeout(onConnectTimeout, this.admission.connectWaitMs, this)
    if (ctx.logger.isLevelEnabled('debug')) this.audit.log.debug({ event: 'session_start' }, 'client connected')
  }

  get throttle(): Throttle {
    return this.throttled ?? (this.throttled = new Throttle(this, this.ctx.stats))
  }

  get decoding(): PacketDecoder {
    return this.decoder ?? (this.decoder = new PacketDecoder(this.state.version))
  }

  get isClosed(): boolean {
    return this.phase === Phase.Closed
  }

  info(): SessionInfo {
    return sessionInfo(this)
  }

  // ---------------------------------------------------------------- bytes and frames

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
    if (lent) this.flow.clientReadLent()
    if (this.phase === Phase.Open) this.flow.flushToBroker()
  }

  /** Broker bytes `chunk[0, end)`; `lent`: valid only during this call. */
  onUpstreamData(chunk: Buffer, end: number, lent: boolean): void {
    this.ctx.coalescing?.noteRead()
    this.brokerFramer.push(chunk, end, lent)
    if (lent) this.flow.brokerReadLent()
    if (this.phase < Phase.Closing) this.flow.flushToClient()
  }

  /** A client frame `buf[start, end)`: the CONNECT goes to the admission, every later frame to ClientFrames. */
  onFrame(buf: Buffer, start: number, end: number, type: number, flags: number, bodyOffset: number): boolean {
    const phase = this.phase
    if (phase >= Phase.Closing) return false
    const stats = this.ctx.stats
    stats.packetsFromClient[type]! += 1
    stats.bytesFromClient[type]! += end - start
    if (phase !== Phase.AwaitConnect) return this.fromClient.dispatch(buf, start, end, type, flags, bodyOffset)
    this.clearTimer()
    return this.admission.onConnectFrame(ownedCopy(buf, start, end), type, flags, bodyOffset)
  }

  onFrameError(error: FrameError, declaredSize: number): void {
    if (this.phase >= Phase.Closing) return
    if (error !== FrameError.TooLarge) {
      this.fromClient.violation('malformed_packet', ReasonCode.MalformedPacket, -1)
      return
    }
    this.audit.tooLarge(declaredSize, ReasonCode.PacketTooLarge)
    this.close('packet_too_large', tooLargeAnswer(this.state, this.phase === Phase.AwaitConnect))
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
    if (this.checks === null) return
    this.checks.close(this.state)
    const checks = this.checks = chain.forSession(this.state)
    if (this.phase !== Phase.Open) return
    const verdict = checks.reviewConnection(this.state)
    // The new policy takes away the right to connect: 5.0 DISCONNECT 0x87 (or the check's reason).
    if (verdict.action !== Action.Forward) this.fromClient.refusedBy(verdict, PacketType.Connect)
    else this.fromClient.reviewSubscriptions()
  }

  /** A held frame's wait is over: it is checked again, then what the client sent behind it. */
  onThrottleEnd(): void {
    if (this.phase !== Phase.Open) return
    // Not reading the client means no chunk brings a reload in: look here.
    if (this.generation !== this.ctx.policy.generation) this.adoptPolicy()
    if (this.phase !== Phase.Open) return // the reload closed the session, and close() cancelled the wait
    const throttle = this.throttle
    if (throttle.replay(this.fromClient)) this.clientFramer.resume()
    if (this.phase !== Phase.Open) return
    this.flow.flushToBroker()
    if (throttle.settle()) this.resumeClient(Paused.Throttled)
  }

  // ---------------------------------------------------------------- from CONNECT to open

  /** The CONNECT is with the checks: the client is not read until the broker connection is up. */
  checking(): void {
    this.phase = Phase.Checking
    this.flow.pauseClient(Paused.Connecting)
  }

  /** The CONNECT passed: `upstream` is being dialled, ready for MQTT bytes on `readyEvent`. */
  dialing(upstream: UpstreamSocket, readyEvent: string, timeoutMs: number): void {
    this.phase = Phase.Dialing
    this.flow.brokerReads = listenToUpstream(this, upstream, readyEvent)
    this.upstream = upstream
    this.upstreamOpen = true
    this.timer = setTimeout(onDialTimeout, timeoutMs, this)
  }

  /** The dial timed out and is tried again: the socket that never connected is dropped, silently. */
  abandonDial(): void {
    if (this.phase !== Phase.Dialing || this.upstream === null) return
    this.clearTimer()
    const upstream = this.upstream
    upstream.removeAllListeners()
    upstream.on('error', ignoreError)
    upstream.destroy()
    this.upstream = null
    this.upstreamOpen = false
  }

  onUpstreamConnect(): void {
    if (this.phase !== Phase.Dialing) return
    this.clearTimer()
    this.phase = Phase.Open
    this.toBroker.attach(this.upstream!)
    this.toBroker.write(this.admission.connected())
    this.clientFramer.resume()
    if (this.phase !== Phase.Open) return
    if (this.ends.clientEndedEarly) {
      this.close('client_closed', null) // what it pipelined is on its way to the broker
      return
    }
    this.flow.flushToBroker()
    this.resumeClient(Paused.Connecting)
  }

  onConnectTimeout(): void {
    this.timer = null
    if (this.phase !== Phase.AwaitConnect) return
    this.audit.connectTimeout(this.clientFramer.bufferedBytes)
    this.close('connect_timeout', null)
  }

  // ---------------------------------------------------------------- pauses

  private resumeClient(reason: number): void {
    this.flow.resumeClient(reason)
    this.ends.clientCaughtUp()
  }

  onUpstreamDrain(): void {
    this.resumeClient(Paused.BrokerFull)
  }

  onClientDrain(): void {
    if (this.flow.clientDrained()) this.ends.upstreamCaughtUp()
  }

  // ---------------------------------------------------------------- ends and closing

  onClientClosed(): void {
    this.clientOpen = false
    if (this.phase >= Phase.Closing) this.maybeFinished()
    else this.ends.clientClosed()
  }

  onUpstreamClosed(): void {
    this.upstreamOpen = false
    if (this.phase >= Phase.Closing) this.maybeFinished()
    else this.ends.upstreamClosed()
  }

  /** A ban made while this session is open (fleet/fleet.ts). */
  banned(ban: Ban): void {
    if (this.phase >= Phase.Closing) return
    this.audit.banned(ban)
    this.close('banned', bannedAnswer(this.state, this.phase === Phase.AwaitConnect, this.fromBroker.connackSeen))
  }

  /**
   * An operator kicked the client (`DELETE /sessions/{clientId}`): 5.0 DISCONNECT 0x98, 3.1.1 a
   * close. From here on nothing the client sends reaches the broker (close() stops the framing).
   */
  kick(): void {
    if (this.phase >= Phase.Closing) return
    this.close('kicked', kickedAnswer(this.state, this.fromBroker.connackSeen))
  }

  /** Graceful shutdown of the proxy: 5.0 clients learn why (0x8B). */
  shutdown(): void {
    if (this.phase >= Phase.Closing) return
    this.close('shutdown', shutdownAnswer(this.state, this.phase === Phase.Checking || this.phase === Phase.Dialing))
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
    this.ends.cancel()
    this.throttled?.cancel()
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
    if (this.clientOpen) {
      if (answer !== null) this.toClient.write(answer)
      this.client.end()
      this.client.resume()
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

  private maybeFinished(): void {
    if (this.phase !== Phase.Closing || this.clientOpen || this.upstreamOpen) return
    this.phase = Phase.Closed
    this.clearTimer()
    this.ctx.stats.sessionsOpen -= 1
    // Bytes written straight to the descriptor (run-writer.ts) are not in client.bytesWritten.
    this.audit.ended(this.closeReason, this.client.bytesRead, this.toClient.bytes, Date.now() - this.startedAt)
    this.ctx.sessionEnded(this)
  }

  private clearTimer(): void {
    if (this.timer === null) return
    clearTimeout(this.timer)
    this.timer = null
  }
}
