/**
 * One client connection and, once its CONNECT has passed the checks, its upstream connection to the
 * broker. The Session is where bytes (protocol/*) meet policy (checks/*) (STYLE H9):
 *
 *   client bytes ─▶ Framer ─▶ onFrame ─▶ decode / PUBLISH fast path ─▶ chain ─▶ RunWriter ─▶ broker
 *   client ◀─ RunWriter ◀─ onBrokerFrame ◀─ Framer ◀─ broker bytes
 *
 * - Nothing reaches the broker before CONNECT passed: the upstream is dialled only then, and frames
 *   that arrive meanwhile stay in the client Framer (stopped) while the client socket is paused.
 * - Allowed frames are forwarded as their original bytes, in runs (session/run-writer.ts).
 * - Backpressure: a full write buffer on one side pauses reading on the other; 'drain' resumes it.
 * - Denials are answered in the client's protocol version (protocol/responses.ts).
 *
 * Socket handlers are module-level functions that find their session through a symbol slot, so a
 * session allocates no closures (STYLE H7).
 */
import net, { type Socket } from 'node:net'
import type { IConnackPacket, IConnectPacket, ISubscribePacket, IUnsubscribePacket } from 'mqtt-packet'
import type { SessionChecks } from '../checks/chain.js'
import type { CloseReason, DenyReason } from '../checks/reasons.js'
import { Action, type Verdict } from '../checks/verdict.js'
import { upstreamConnect } from '../auth/upstream-credentials.js'
import { PacketDecoder, readConnectLevel, ConnectProtocol } from '../protocol/decode.js'
import { Framer, FrameError, type FrameSink } from '../protocol/framer.js'
import { clientMaySend, FLAGS_ANY, PacketType, packetTypeNames, requiredFlags } from '../protocol/packet-type.js'
import { PublishView, readPublish } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { CONNACK_UNACCEPTABLE_PROTOCOL, connackRefusal, disconnectV5, publishRefusalV5 } from '../protocol/responses.js'
import type { ConnInfo } from './conn-info.js'
import type { SessionContext } from './context.js'
import { RunWriter } from './run-writer.js'
import { SessionState } from './state.js'

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
}

const kSession = Symbol('moat.session')
type SessionSocket = Socket & { [kSession]: Session }

const Phase = {
  AwaitConnect: 0,
  Checking: 1,
  Dialing: 2,
  Open: 3,
  Closing: 4,
  Closed: 5,
} as const
type Phase = (typeof Phase)[keyof typeof Phase]

// Why the client socket is paused (a bit each); it resumes when none is left.
const PAUSED_CONNECTING = 1
const PAUSED_BROKER_FULL = 2

/** How long a closing session waits for its peers to close before destroying the sockets. */
const LINGER_MS = 2000

/** The deny reason that names a 5.0 reason code found while reading a packet. */
function faultReason(code: number): DenyReason {
  switch (code) {
    case ReasonCode.TopicNameInvalid: return 'invalid_topic'
    case ReasonCode.TopicFilterInvalid: return 'invalid_topic_filter'
    case ReasonCode.TopicAliasInvalid: return 'topic_alias_invalid'
    case ReasonCode.ProtocolError: return 'protocol_error'
    case ReasonCode.PacketTooLarge: return 'packet_too_large'
    default: return 'malformed_packet'
  }
}

export class Session implements FrameSink {
  readonly state: SessionState
  readonly client: Socket
  private readonly ctx: SessionContext
  private upstream: Socket | null = null
  private phase: Phase = Phase.AwaitConnect
  private readonly clientFramer: Framer
  private readonly brokerFramer: Framer
  private readonly toBroker = new RunWriter()
  private readonly toClient = new RunWriter()
  private readonly publishView = new PublishView()
  private checks: SessionChecks | null = null
  private decoder: PacketDecoder | null = null
  private connectFrame: Buffer | null = null
  private connectPacket: IConnectPacket | null = null
  private timer: NodeJS.Timeout | null = null
  private pausedFor = 0
  private brokerPaused = false
  private clientSentDisconnect = false
  private brokerSentDisconnect = false
  private connackSeen = false
  private clientOpen = true
  private upstreamOpen = false
  private readonly startedAt = Date.now()
  /** The policy generation this session's checks and caps were built from. */
  private generation: number
  private dialStartedAt = 0
  private closeReason: CloseReason | null = null
  private readonly log: SessionContext['logger']

  constructor(ctx: SessionContext, client: Socket, conn: ConnInfo) {
    this.ctx = ctx
    this.client = client
    this.state = new SessionState(ctx.nextSessionId(), conn)
    this.log = ctx.logger.child({ sid: this.state.id, listener: conn.listener, remote: `${this.state.remoteAddress}:${this.state.remotePort}` })
    const { config, generation } = ctx.policy
    this.generation = generation
    const maxPacketSize = config.limits.maxPacketSize
    this.clientFramer = new Framer(this, maxPacketSize)
    this.brokerFramer = new Framer(new BrokerFrames(this), maxPacketSize)
    this.toClient.attach(client)

    const socket = client as SessionSocket
    socket[kSession] = this
    client.setNoDelay(true)
    client.on('data', onClientData)
    client.on('end', onClientEnd)
    client.on('error', onClientError)
    client.on('close', onClientClose)
    client.on('drain', onClientDrain)
    this.timer = setTimeout(onConnectTimeout, config.limits.connectTimeoutMs, this)
    this.log.debug({ event: 'session_start' }, 'client connected')
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
      clientWriteBuffer: this.client.writableLength,
      brokerWriteBuffer: this.upstream?.writableLength ?? 0,
      /** Bytes received from the client and not yet handed on (a partial frame, or held while waiting). */
      clientReadBuffer: this.clientFramer.bufferedBytes,
      brokerReadBuffer: this.brokerFramer.bufferedBytes,
      clientPaused: this.pausedFor !== 0,
      brokerPaused: this.brokerPaused,
    }
  }

  // ---------------------------------------------------------------- client → broker

  onClientData(chunk: Buffer): void {
    if (this.generation !== this.ctx.policy.generation) this.adoptPolicy()
    this.clientFramer.push(chunk)
    if (this.phase !== Phase.Open) return
    this.toBroker.flush()
    if (this.upstream!.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
  }

  /**
   * A reload happened: packets from now on follow the new policy (new caps, a chain rebuilt from
   * the new config). Protocol state (aliases, identity) lives in SessionState and is kept.
   */
  private adoptPolicy(): void {
    const { config, chain, generation } = this.ctx.policy
    this.generation = generation
    this.clientFramer.maxPacketSize = config.limits.maxPacketSize
    this.brokerFramer.maxPacketSize = config.limits.maxPacketSize
    if (this.checks !== null) {
      this.checks.close(this.state)
      this.checks = chain.forSession(this.state)
    }
  }

  onFrame(frame: Buffer, type: number, flags: number, bodyOffset: number): boolean {
    const phase = this.phase
    if (phase >= Phase.Closing) return false
    const stats = this.ctx.stats
    stats.packetsFromClient[type]! += 1
    stats.bytesFromClient[type]! += frame.length
    if (phase === Phase.AwaitConnect) return this.onConnectFrame(frame, type, flags, bodyOffset)

    const required = requiredFlags[type]!
    // Reserved flag bits MUST have their listed values; otherwise close [MQTT-2.2.2-1], [MQTT-2.2.2-2].
    if (required !== FLAGS_ANY && flags !== required) return this.violation('reserved_flags', ReasonCode.MalformedPacket, type)
    switch (type) {
      case PacketType.Publish:
        return this.onPublish(frame, flags, bodyOffset)
      case PacketType.Puback:
      case PacketType.Pubrec:
      case PacketType.Pubrel:
      case PacketType.Pubcomp:
        return this.onAck(frame, type, bodyOffset)
      case PacketType.Subscribe:
        return this.onSubscribe(frame)
      case PacketType.Unsubscribe:
        return this.onUnsubscribe(frame)
      case PacketType.Pingreq:
        if (frame.length !== 2) return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
        this.toBroker.add(frame)
        return true
      case PacketType.Disconnect:
        return this.onDisconnect(frame, bodyOffset)
      case PacketType.Auth:
        if (this.state.version !== 5) break
        return this.onAuth(frame)
      case PacketType.Connect:
        // A second CONNECT is a protocol error: close the connection [MQTT-3.1.0-2].
        return this.violation('duplicate_connect', ReasonCode.ProtocolError, type)
    }
    // CONNACK, SUBACK, UNSUBACK, PINGRESP, type 0, and AUTH before 5.0 never come from a client.
    return this.violation('forbidden_packet_type', ReasonCode.ProtocolError, type)
  }

  private onPublish(frame: Buffer, flags: number, bodyOffset: number): boolean {
    const view = this.publishView
    const fault = readPublish(frame, flags, bodyOffset, this.state.version, true, view)
    if (fault !== 0) {
      view.clear()
      return this.violation(faultReason(fault), fault, PacketType.Publish)
    }
    const verdict = this.checks!.runPublish(view, this.state)
    const qos = view.qos
    const packetId = view.packetId
    view.clear()
    if (verdict.action === Action.Forward) {
      this.toBroker.add(frame)
      return true
    }
    return this.refusePublish(verdict, qos, packetId)
  }

  /**
   * A refused PUBLISH: Disconnect closes the client; Reject answers a 5.0 QoS 1/2 publish with
   * PUBACK/PUBREC carrying the reason, and drops anything else (3.1.1 has no negative ack).
   */
  private refusePublish(verdict: Verdict, qos: number, packetId: number): boolean {
    if (verdict.action === Action.Disconnect) return this.violation(verdict.why, verdict.reason, PacketType.Publish)
    this.ctx.stats.countReject(verdict.why as CloseReason)
    if (qos > 0 && this.state.version === 5) {
      this.toClient.write(publishRefusalV5(qos === 1 ? PacketType.Puback : PacketType.Pubrec, packetId, verdict.reason))
    }
    return true
  }

  /** PUBACK, PUBREC, PUBREL, PUBCOMP: a non-zero packet id [MQTT-2.2.1-3], and the right length. */
  private onAck(frame: Buffer, type: number, bodyOffset: number): boolean {
    const remaining = frame.length - bodyOffset
    const version = this.state.version
    if (remaining < 2 || (version < 5 && remaining !== 2) || frame.readUInt16BE(bodyOffset) === 0) {
      return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
    }
    // 5.0 acks may carry a reason code and properties: let the full decoder judge those (rare).
    if (remaining > 3 && this.decoder!.decode(frame) === null) return this.decodeFailure(type)
    this.toBroker.add(frame)
    return true
  }

  private onSubscribe(frame: Buffer): boolean {
    const packet = this.decoder!.decode(frame) as ISubscribePacket | null
    if (packet === null) return this.decodeFailure(PacketType.Subscribe)
    if (!packet.messageId) return this.violation('malformed_packet', ReasonCode.MalformedPacket, PacketType.Subscribe)
    const checks = this.checks!
    for (const subscription of packet.subscriptions) {
      const verdict = checks.runSubscribe(subscription, this.state)
      // Per-filter refusals (SUBACK failure codes) come with the ACL; until then any refusal closes.
      if (verdict.action !== Action.Forward) return this.violation(verdict.why, verdict.reason, PacketType.Subscribe)
    }
    this.toBroker.add(frame)
    return true
  }

  private onUnsubscribe(frame: Buffer): boolean {
    const packet = this.decoder!.decode(frame) as IUnsubscribePacket | null
    if (packet === null) return this.decodeFailure(PacketType.Unsubscribe)
    if (!packet.messageId) return this.violation('malformed_packet', ReasonCode.MalformedPacket, PacketType.Unsubscribe)
    const checks = this.checks!
    for (const filter of packet.unsubscriptions) {
      const verdict = checks.runUnsubscribe(filter, this.state)
      if (verdict.action !== Action.Forward) return this.violation(verdict.why, verdict.reason, PacketType.Unsubscribe)
    }
    this.toBroker.add(frame)
    return true
  }

  private onDisconnect(frame: Buffer, bodyOffset: number): boolean {
    // 3.1.1 DISCONNECT has no body; 5.0 may carry a reason code and properties.
    if (this.state.version < 5 ? frame.length !== bodyOffset : this.decoder!.decode(frame) === null) {
      return this.decodeFailure(PacketType.Disconnect)
    }
    this.clientSentDisconnect = true
    this.toBroker.add(frame)
    this.close('client_disconnect', null)
    return false
  }

  private onAuth(frame: Buffer): boolean {
    if (this.decoder!.decode(frame) === null) return this.decodeFailure(PacketType.Auth)
    this.toBroker.add(frame)
    return true
  }

  private decodeFailure(type: number): boolean {
    this.ctx.stats.decodeErrors[type]! += 1
    this.log.debug({ event: 'decode_error', packetType: packetTypeNames[type], error: this.decoder?.lastError }, 'packet failed to decode')
    return this.violation('malformed_packet', ReasonCode.MalformedPacket, type)
  }

  /**
   * A client broke the protocol or a check refused it with Disconnect: count, log, answer in its
   * version (5.0 DISCONNECT with the reason, only once the broker's CONNACK went out
   * [MQTT-3.14.0-1]), and close. Returns false so the framer stops.
   */
  private violation(why: DenyReason, reason: number, type: number): boolean {
    this.log.warn({ event: 'client_refused', reason: why, code: reason, packetType: packetTypeNames[type], clientId: this.state.clientId }, 'closing client')
    const answer = this.state.version === 5 && this.state.connected ? disconnectV5(reason) : null
    this.close(why, answer)
    return false
  }

  // ---------------------------------------------------------------- CONNECT

  private onConnectFrame(frame: Buffer, type: number, flags: number, bodyOffset: number): boolean {
    this.clearTimer()
    // The first packet from the client MUST be a CONNECT [MQTT-3.1.0-1].
    if (type !== PacketType.Connect) return this.refuseConnect('first_packet_not_connect', null, type)
    if (flags !== 0) return this.refuseConnect('reserved_flags', null, type)
    const level = readConnectLevel(frame, bodyOffset)
    if (level === -ConnectProtocol.BadName) return this.refuseConnect('invalid_protocol_name', null, type)
    if (level === -ConnectProtocol.UnsupportedLevel) {
      // Unsupported protocol level: CONNACK 0x01, then close [MQTT-3.1.2-2].
      return this.refuseConnect('unsupported_protocol_version', CONNACK_UNACCEPTABLE_PROTOCOL, type)
    }
    if (level < 0) return this.refuseConnect('malformed_packet', null, type)
    const state = this.state
    state.version = level
    const packet = new PacketDecoder().decode(frame) as IConnectPacket | null
    if (packet === null) {
      this.ctx.stats.decodeErrors[PacketType.Connect]! += 1
      return this.refuseConnect('malformed_packet', connackRefusal(level, ReasonCode.MalformedPacket), type)
    }
    state.clientId = packet.clientId
    state.username = packet.username ?? null
    state.keepalive = packet.keepalive ?? 0
    state.cleanStart = packet.clean ?? true
    this.decoder = new PacketDecoder(level)
    this.checks = this.ctx.policy.chain.forSession(state)
    this.connectFrame = frame
    this.connectPacket = packet
    this.phase = Phase.Checking
    this.pauseClient(PAUSED_CONNECTING)
    const verdict = this.checks.runConnect(packet, state)
    if (verdict instanceof Promise) verdict.then(onConnectVerdict.bind(null, this), onConnectVerdict.bind(null, this, null))
    else this.onConnectVerdict(verdict)
    // Stop the framer: later frames wait until the broker connection is up (or the client is refused).
    return false
  }

  onConnectVerdict(verdict: Verdict | null): void {
    if (this.phase !== Phase.Checking) return
    if (verdict === null || verdict.action !== Action.Forward) {
      const reason = verdict?.reason ?? ReasonCode.ImplementationSpecificError
      const why = verdict?.why ?? 'check_failed'
      this.connectPacket = null
      this.refuseConnect(why, connackRefusal(this.state.version, reason), PacketType.Connect)
      return
    }
    const state = this.state
    this.log.info({ event: 'client_admitted', clientId: state.clientId || undefined, username: state.username ?? undefined, authenticatedBy: state.authenticatedBy ?? undefined, version: state.version }, 'client admitted')
    // What the broker sees of the credentials (auth.upstreamCredentials): the one deliberate rewrite.
    const upstreamFrame = upstreamConnect(this.connectFrame!, this.connectPacket!, this.ctx.policy.config.auth?.upstreamCredentials ?? 'passthrough')
    this.connectPacket = null
    if (upstreamFrame === null) {
      this.refuseConnect('check_failed', connackRefusal(this.state.version, ReasonCode.ImplementationSpecificError), PacketType.Connect)
      return
    }
    this.connectFrame = upstreamFrame
    this.dial()
  }

  private refuseConnect(why: CloseReason, answer: Buffer | null, type: number): boolean {
    // A failing auth backend is logged once per interval (auth/instrumented.ts), not once per client.
    const level = why === 'auth_backend_failed' ? 'debug' : 'warn'
    this.log[level]({ event: 'connect_refused', reason: why, packetType: packetTypeNames[type], clientId: this.state.clientId || undefined }, 'refusing client')
    this.close(why, answer)
    return false
  }

  private dial(): void {
    this.phase = Phase.Dialing
    const { host, port, connectTimeoutMs } = this.ctx.policy.config.upstream
    this.dialStartedAt = performance.now()
    const upstream = net.connect({ host, port }) as SessionSocket
    upstream[kSession] = this
    upstream.setNoDelay(true)
    upstream.on('connect', onUpstreamConnect)
    upstream.on('data', onUpstreamData)
    upstream.on('end', onUpstreamEnd)
    upstream.on('error', onUpstreamError)
    upstream.on('close', onUpstreamClose)
    upstream.on('drain', onUpstreamDrain)
    this.upstream = upstream
    this.upstreamOpen = true
    this.timer = setTimeout(onDialTimeout, connectTimeoutMs, this)
  }

  onUpstreamConnect(): void {
    if (this.phase !== Phase.Dialing) return
    this.clearTimer()
    const stats = this.ctx.stats
    stats.upstreamConnects += 1
    stats.upstreamConnectSeconds += (performance.now() - this.dialStartedAt) / 1000
    this.phase = Phase.Open
    const upstream = this.upstream!
    this.toBroker.attach(upstream)
    // Principle 3: the broker gets the CONNECT exactly as the client sent it (or as
    // auth.upstreamCredentials deliberately rewrote it).
    this.toBroker.write(this.connectFrame!)
    this.connectFrame = null
    this.clientFramer.resume()
    if (this.phase !== Phase.Open) return
    this.toBroker.flush()
    if (upstream.writableNeedDrain) this.pauseClient(PAUSED_BROKER_FULL)
    this.resumeClient(PAUSED_CONNECTING)
  }

  onDialFailed(why: CloseReason, detail: string): void {
    if (this.phase !== Phase.Dialing) return
    this.ctx.stats.upstreamConnectFailures += 1
    this.log.error({ event: 'upstream_unavailable', error: detail }, 'broker unreachable')
    // 3.1.1: CONNACK 3 (server unavailable); 5.0: CONNACK 0x88 (a DISCONNECT may not precede CONNACK).
    this.close(why, connackRefusal(this.state.version, ReasonCode.ServerUnavailable))
  }

  // ---------------------------------------------------------------- broker → client

  onUpstreamData(chunk: Buffer): void {
    this.brokerFramer.push(chunk)
    if (this.phase >= Phase.Closing) return
    this.toClient.flush()
    if (this.client.writableNeedDrain && !this.brokerPaused) {
      this.brokerPaused = true
      this.upstream!.pause()
    }
  }

  onBrokerFrame(frame: Buffer, type: number, bodyOffset: number): boolean {
    if (this.phase >= Phase.Closing) return false
    const stats = this.ctx.stats
    stats.packetsFromBroker[type]! += 1
    stats.bytesFromBroker[type]! += frame.length
    if (type === PacketType.Connack) {
      if (this.connackSeen) return this.brokerViolation('a second CONNACK')
      this.onConnack(frame, bodyOffset)
    } else if (type === PacketType.Disconnect) {
      this.brokerSentDisconnect = true
    }
    this.toClient.add(frame)
    return true
  }

  private onConnack(frame: Buffer, bodyOffset: number): void {
    this.connackSeen = true
    const state = this.state
    const code = frame.length > bodyOffset + 1 ? frame[bodyOffset + 1]! : 0xff
    state.connected = code === 0
    if (state.connected && state.version === 5) {
      const connack = this.decoder!.decode(frame) as IConnackPacket | null
      state.topicAliasMaximum = connack?.properties?.topicAliasMaximum ?? 0
    }
  }

  private brokerViolation(detail: string): boolean {
    this.log.error({ event: 'upstream_protocol_error', error: detail }, 'broker sent something it must not')
    this.close('upstream_protocol_error', this.unavailableAnswer(ReasonCode.ImplementationSpecificError))
    return false
  }

  onBrokerFrameError(error: FrameError, declaredSize: number): void {
    this.brokerViolation(error === FrameError.TooLarge ? `packet of ${declaredSize} bytes over the cap` : 'malformed remaining length')
  }

  /** The broker went away: tell the client in its version's terms, then close. */
  onUpstreamGone(why: CloseReason, detail: string): void {
    if (this.phase >= Phase.Closing) return
    if (this.phase === Phase.Dialing) {
      this.onDialFailed('upstream_unavailable', detail)
      return
    }
    this.log.info({ event: 'upstream_gone', reason: why, error: detail }, 'broker connection ended')
    const quiet = this.brokerSentDisconnect || this.clientSentDisconnect
    this.close(why, quiet ? null : this.unavailableAnswer(ReasonCode.ServerBusy))
  }

  /**
   * How to tell a client the service is gone: before a successful CONNACK, a refusing CONNACK
   * (3.1.1 code 3; 5.0 0x88); after it, on 5.0, DISCONNECT with `reason`; 3.1.1 just closes.
   */
  private unavailableAnswer(reason: number): Buffer | null {
    const state = this.state
    if (!this.connackSeen) return state.version === 0 ? null : connackRefusal(state.version, ReasonCode.ServerUnavailable)
    return state.version === 5 && state.connected ? disconnectV5(reason) : null
  }

  // ---------------------------------------------------------------- framing errors, timers, backpressure

  onFrameError(error: FrameError, declaredSize: number): void {
    if (this.phase >= Phase.Closing) return
    if (error === FrameError.TooLarge) {
      this.log.warn({ event: 'client_refused', reason: 'packet_too_large', declaredSize }, 'closing client')
      // 5.0: DISCONNECT 0x95 [MQTT-3.2.2-15 spirit]; before CONNACK: CONNACK 0x95.
      const answer = this.state.version !== 5 ? null
        : this.state.connected ? disconnectV5(ReasonCode.PacketTooLarge)
        : this.phase === Phase.AwaitConnect ? null : connackRefusal(5, ReasonCode.PacketTooLarge)
      this.close('packet_too_large', answer)
      return
    }
    this.violation('malformed_packet', ReasonCode.MalformedPacket, PacketType.Reserved)
  }

  onConnectTimeout(): void {
    this.timer = null
    if (this.phase !== Phase.AwaitConnect) return
    this.log.warn({ event: 'client_refused', reason: 'connect_timeout', buffered: this.clientFramer.bufferedBytes }, 'no CONNECT in time')
    this.close('connect_timeout', null)
  }

  onClientDrain(): void {
    if (this.brokerPaused && this.phase === Phase.Open) {
      this.brokerPaused = false
      this.upstream!.resume()
    }
  }

  onUpstreamDrain(): void {
    this.resumeClient(PAUSED_BROKER_FULL)
  }

  private pauseClient(reason: number): void {
    this.pausedFor |= reason
    this.client.pause()
  }

  private resumeClient(reason: number): void {
    this.pausedFor &= ~reason
    if (this.pausedFor === 0 && this.phase < Phase.Closing) this.client.resume()
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

  /** The client half-closed or failed: end the session (the broker sees the connection drop). */
  onClientEnded(why: CloseReason): void {
    if (this.phase < Phase.Closing) this.close(this.clientSentDisconnect ? 'client_disconnect' : why, null)
  }

  onClientClosed(): void {
    this.clientOpen = false
    if (this.phase < Phase.Closing) this.close(this.clientSentDisconnect ? 'client_disconnect' : 'client_closed', null)
    else this.maybeFinished()
  }

  onUpstreamClosed(): void {
    this.upstreamOpen = false
    if (this.phase < Phase.Closing) this.onUpstreamGone('upstream_closed', 'connection closed')
    else this.maybeFinished()
  }

  private maybeFinished(): void {
    if (this.phase !== Phase.Closing || this.clientOpen || this.upstreamOpen) return
    this.phase = Phase.Closed
    this.clearTimer()
    this.ctx.stats.sessionsOpen -= 1
    this.log.info({
      event: 'session_end',
      clientId: this.state.clientId || undefined,
      username: this.state.username ?? undefined,
      authenticatedBy: this.state.authenticatedBy ?? undefined,
      version: this.state.version,
      reason: this.closeReason,
      bytesIn: this.client.bytesRead,
      bytesOut: this.client.bytesWritten,
      durationMs: Date.now() - this.startedAt,
    }, 'session closed')
    this.ctx.sessionEnded(this)
  }
}

/** The broker side's framer sink: routes to the session's broker-frame handlers. */
class BrokerFrames implements FrameSink {
  private readonly session: Session
  constructor(session: Session) {
    this.session = session
  }

  onFrame(frame: Buffer, type: number, _flags: number, bodyOffset: number): boolean {
    return this.session.onBrokerFrame(frame, type, bodyOffset)
  }

  onFrameError(error: FrameError, declaredSize: number): void {
    this.session.onBrokerFrameError(error, declaredSize)
  }
}

// Module-level handlers: `this` is the socket; no per-session closures.
function onClientData(this: SessionSocket, chunk: Buffer): void {
  this[kSession].onClientData(chunk)
}
function onClientEnd(this: SessionSocket): void {
  this[kSession].onClientEnded('client_closed')
}
function onClientError(this: SessionSocket): void {
  this[kSession].onClientEnded('client_error')
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
  this[kSession].onUpstreamData(chunk)
}
function onUpstreamEnd(this: SessionSocket): void {
  this[kSession].onUpstreamGone('upstream_closed', 'broker closed the connection')
}
function onUpstreamError(this: SessionSocket, err: Error): void {
  this[kSession].onUpstreamGone('upstream_error', err.message)
}
function onUpstreamClose(this: SessionSocket): void {
  this[kSession].onUpstreamClosed()
}
function onUpstreamDrain(this: SessionSocket): void {
  this[kSession].onUpstreamDrain()
}
function onConnectTimeout(session: Session): void {
  session.onConnectTimeout()
}
function onDialTimeout(session: Session): void {
  session.onDialFailed('upstream_unavailable', 'connect timeout')
}
function onLingerTimeout(session: Session): void {
  session.onLingerTimeout()
}
function onConnectVerdict(session: Session, verdict: Verdict | null): void {
  session.onConnectVerdict(verdict)
}
