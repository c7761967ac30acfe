/**
 * A Session in memory: a fake client socket, a fake broker connection behind the context's dialer,
 * and a logger whose lines the test reads. Nothing touches the network.
 */
import { Duplex } from 'node:stream'
import { generate, type Packet } from 'mqtt-packet'
import { pino } from 'pino'
import { afterEach, beforeEach, vi } from 'vitest'
import type { CheckFactory } from '../../src/checks/check.js'
import { checkFactories } from '../../src/checks/index.js'
import { configFromObject } from '../../src/config/load.js'
import { PolicyStore } from '../../src/policy/store.js'
import type { MoatConfig } from '../../src/config/types.js'
import type { ConnectionRefusal } from '../../src/limits/connections.js'
import { Stats } from '../../src/stats/stats.js'
import type { ClientSocket, ConnInfo } from '../../src/client/conn-info.js'
import type { SessionContext } from '../../src/session/context.js'
import { Session } from '../../src/session/session.js'
import { DialFailureLog, type UpstreamSocket } from '../../src/session/upstream.js'

/**
 * One end of a connection: what the session writes is kept in `written`; `send` plays the peer.
 * When the session ends its side, the peer closes too, as a real client or broker would.
 */
export class FakeSocket extends Duplex implements ClientSocket, UpstreamSocket {
  readonly written: Buffer[] = []
  bytesRead = 0
  bytesWritten = 0
  /** false: the peer stays after the session ended its side, until the test ends it (`send(null)`). */
  closesWhenEnded = true

  constructor() {
    super({ allowHalfOpen: true })
  }

  setNoDelay(): this {
    return this
  }

  /** Bytes from the peer; null: the peer ends its side. */
  send(bytes: Buffer | Packet | null, version = 4): void {
    if (bytes === null) {
      this.push(null)
      return
    }
    const buf = Buffer.isBuffer(bytes) ? bytes : generate(bytes, { protocolVersion: version })
    this.bytesRead += buf.length
    this.push(buf)
  }

  /** Everything the session wrote, in one buffer. */
  received(): Buffer {
    return Buffer.concat(this.written)
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.written.push(chunk)
    this.bytesWritten += chunk.length
    done()
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.closesWhenEnded) this.push(null)
    done()
  }
}

export type TestContext = SessionContext & { readonly policy: PolicyStore; readonly stats: Stats }

export interface HarnessOptions {
  factories?: readonly CheckFactory[]
  /** false: the fake broker connection waits for the test to emit 'connect'. */
  connectOnDial?: boolean
  /** A refusal decided at accept time (Moat.accept). */
  refusal?: ConnectionRefusal | null
  /** Context members to add or replace (a limiter, a fleet, a dialer). */
  context?: Partial<SessionContext>
}

export interface SessionHarness {
  readonly session: Session
  readonly client: FakeSocket
  /** The broker connection, once the session dialled. */
  upstream(): FakeSocket
  readonly dials: FakeSocket[]
  readonly ctx: TestContext
  /** Every log line, parsed. */
  readonly lines: Array<Record<string, unknown>>
  /** Sessions the context was told have ended. */
  readonly ended: Session[]
  /** Another session on the same context (its broker connection is the next of `dials`). */
  another(refusal?: ConnectionRefusal | null): { session: Session; client: FakeSocket }
}

/** A config for in-memory sessions: anonymous clients, the broker at an address nothing dials. */
export function sessionConfig(extra: Record<string, unknown> = {}): MoatConfig {
  return configFromObject({
    listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }],
    upstream: { host: '127.0.0.1', port: 1 },
    auth: { anonymous: true },
    ...extra,
  })
}

export const TEST_CONN: ConnInfo = { listener: 'mqtt', remoteAddress: '10.0.0.7', remotePort: 40000, transport: 'tcp', tlsVersion: null, certificate: null }

/**
 * A session over fake sockets. The dialer hands out a FakeSocket that reports itself connected on
 * the next tick (`connectOnDial: false`: the test emits 'connect' itself).
 */
export function sessionHarness(config: MoatConfig = sessionConfig(), options: HarnessOptions = {}): SessionHarness {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
  const dials: FakeSocket[] = []
  const ended: Session[] = []
  let ids = 0
  const ctx: TestContext = {
    policy: new PolicyStore(config, options.factories ?? checkFactories),
    stats: new Stats(),
    logger,
    dialFailures: new DialFailureLog(logger),
    nextSessionId: () => ++ids,
    sessionEnded: (s: Session) => { ended.push(s) },
    dial: () => {
      const socket = new FakeSocket()
      dials.push(socket)
      if (options.connectOnDial !== false) process.nextTick(() => socket.emit('connect'))
      return socket
    },
    ...options.context,
  }
  const another = (refusal: ConnectionRefusal | null = null): { session: Session; client: FakeSocket } => {
    const client = new FakeSocket()
    return { session: new Session(ctx, client, TEST_CONN, refusal), client }
  }
  const { session, client } = another(options.refusal ?? null)
  return {
    session,
    client,
    dials,
    ctx,
    lines,
    ended,
    another,
    upstream: () => {
      const socket = dials[0]
      if (socket === undefined) throw new Error('the session has not dialled')
      return socket
    },
  }
}

/** Lets queued callbacks (next ticks, stream events, timers of 0 ms) run. */
export function settle(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// ---------------------------------------------------------------- packets, and a session opened

/** A packet's bytes, as mqtt-packet encodes them. */
export function bytes(packet: Packet, version = 4): Buffer {
  return generate(packet, { protocolVersion: version })
}

/** The CONNECT of client `dev-1` (MQTT 3.1 names its protocol MQIsdp). */
export function connectBytes(version = 4, fields: { keepalive?: number; username?: string } = {}): Buffer {
  return bytes({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version as 4, clientId: 'dev-1', clean: true, keepalive: fields.keepalive ?? 0, ...(fields.username === undefined ? {} : { username: fields.username }) }, version)
}

/** A CONNACK with `code` (3.1.1 return code or 5.0 reason code). */
export function connackBytes(version = 4, code = 0): Buffer {
  return bytes({ cmd: 'connack', returnCode: code, reasonCode: code, sessionPresent: false }, version)
}

export function publishBytes(topic: string, qos: 0 | 1 | 2 = 0, messageId?: number, version = 4): Buffer {
  return bytes({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false, ...(messageId === undefined ? {} : { messageId }) }, version)
}

/** CONNECT in, the broker's CONNACK back: the session is open. */
export async function openSession(h: SessionHarness, version = 4, keepalive = 0): Promise<void> {
  h.client.send(connectBytes(version, { keepalive }))
  await settle()
  h.upstream().send(connackBytes(version))
  await settle()
}

/** `buf` without its first packet (the CONNECT a broker got, the CONNACK a client got). */
function afterFirstPacket(buf: Buffer): Buffer {
  let length = 0
  let i = 1
  for (let shift = 0; ; shift += 7) {
    const byte = buf[i++]!
    length += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) break
  }
  return buf.subarray(i + length)
}

/** What the client received after its CONNACK. */
export function afterConnack(h: SessionHarness): Buffer {
  return afterFirstPacket(h.client.received())
}

/** What the broker received after the CONNECT. */
export function afterConnect(h: SessionHarness): Buffer {
  return afterFirstPacket(h.upstream().received())
}

/** The reason in the session's session_end line. */
export function endReason(h: SessionHarness): unknown {
  return h.lines.find((l) => l.event === 'session_end')?.reason
}

/** For the tests of a describe block: timers and the nowMs() clock (performance.now) are fake, moved by vi.advanceTimersByTime. */
export function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
  })
  afterEach(() => {
    vi.useRealTimers()
  })
}
