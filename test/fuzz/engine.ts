/**
 * The fuzz engine: fast-check arbitraries for every client packet type of MQTT 3.1, 3.1.1 and 5.0
 * (properties included), and a mutation fuzzer over valid sessions — sessions captured from real
 * MQTT.js clients and sessions built from the arbitraries — with byte flips, truncation, inserted
 * bytes, corrupted length fields, packets spliced in from other sessions (other versions too),
 * duplicated packets, and random chunk boundaries on the wire.
 *
 * `runFuzz` drives a live Moat (in this process, in front of a RecordingUpstream) with batches of
 * such sessions while an honest MQTT.js client keeps round-tripping through it, and reports every
 * finding: bytes that reached the upstream although malformed or forbidden, a session Moat did not
 * close, an honest round trip that failed, memory that kept growing. Everything is reproducible
 * from the seed it prints.
 */
import net from 'node:net'
import { runInNewContext } from 'node:vm'
import v8 from 'node:v8'
import fc from 'fast-check'
import { generate, type Packet } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { denyReasons } from '../../src/stats/reasons.js'
import type { Moat } from '../../src/moat.js'
import { aclFrom } from '../helpers/acl.js'
import { connect } from '../helpers/clients.js'
import { limitsFrom, startMoat } from '../helpers/moat.js'
import { FrameSplitter, type Policy } from './grammar.js'
import { RecordingUpstream, type Violation } from './recording-upstream.js'

// ---------------------------------------------------------------- the policy, on both sides

/** Payload cap Moat enforces (limits.maxPayload) and the upstream checks. */
export const MAX_PAYLOAD = 64

/** Moat's ACL for the fuzz run: a few publish topics, subscriptions under m/, nothing else. */
export const fuzzAcl = [
  { allow: 'publish', topic: 'm/a' },
  { allow: 'publish', topic: 'm/pub/#' },
  { allow: 'all', topic: 'm/honest/#' },
  { allow: 'subscribe', topic: 'm/#' },
  { deny: 'all', topic: '#' },
]

function levels(s: string): string[] {
  return s.split('/')
}

/** The same policy, written independently for the recording upstream. */
export const fuzzPolicy: Policy = {
  publish(topic, payloadLength) {
    if (payloadLength > MAX_PAYLOAD) return false
    const l = levels(topic)
    if (topic === 'm/a') return true
    return l[0] === 'm' && (l[1] === 'pub' || l[1] === 'honest') && l.length >= 2
  },
  subscribe(filter) {
    const l = levels(filter.startsWith('$share/') ? levels(filter).slice(2).join('/') : filter)
    return l[0] === 'm'
  },
}

// ---------------------------------------------------------------- arbitraries

export type Version = 3 | 4 | 5

const topicLevel = fc.oneof(
  fc.constantFrom('m', 'a', 'pub', 'honest', 'c', '$SYS', '$x', 'x y', 'é', '', '+', '#'),
  fc.string({ minLength: 0, maxLength: 6 }),
)
const topicArb = fc.array(topicLevel, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'))
const validTopicArb = fc.oneof(
  fc.constantFrom('m/a', 'm/pub/x', 'm/honest/z', 'm/b/c', 'other/t', '$SYS/x', '$share-like'),
  topicArb.filter((t) => t.length > 0 && !/[+#\u0000]/.test(t)),
)
const filterArb = fc.oneof(
  fc.constantFrom('m/#', 'm/+/c', '#', '+', 'm/a', '$SYS/#', '$share/g/m/#', '$share//x', 'a/#/b', 'a+'),
  topicArb.filter((t) => t.length > 0),
)
const smallBuf = fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a))
const userProperties = fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 })
const packetId = fc.integer({ min: 1, max: 65_535 })

function publishArb(v: Version): fc.Arbitrary<Packet> {
  return fc.record({
    topic: validTopicArb,
    payload: smallBuf,
    qos: fc.constantFrom(0, 1, 2),
    retain: fc.boolean(),
    messageId: packetId,
    props: v === 5
      ? fc.record({ topicAlias: fc.integer({ min: 1, max: 12 }), payloadFormatIndicator: fc.boolean(), messageExpiryInterval: fc.nat(), contentType: fc.string({ maxLength: 8 }), responseTopic: validTopicArb, correlationData: smallBuf, userProperties }, { requiredKeys: [] })
      : fc.constant(undefined),
    aliasOnly: fc.boolean(),
  }).map(({ topic, payload, qos, retain, messageId, props, aliasOnly }) => ({
    cmd: 'publish', topic: props?.topicAlias !== undefined && aliasOnly ? '' : topic, payload, qos, retain, dup: false,
    ...(qos > 0 ? { messageId } : {}), ...(props !== undefined ? { properties: props } : {}),
  }) as Packet)
}

function subscribeArb(v: Version): fc.Arbitrary<Packet> {
  return fc.record({
    messageId: packetId,
    subscriptions: fc.array(fc.record({ topic: filterArb, qos: fc.constantFrom(0, 1, 2), nl: fc.boolean(), rap: fc.boolean(), rh: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 3 }),
    props: v === 5 ? fc.record({ subscriptionIdentifier: fc.integer({ min: 1, max: 1000 }), userProperties }, { requiredKeys: [] }) : fc.constant(undefined),
  }).map(({ messageId, subscriptions, props }) => ({
    cmd: 'subscribe', messageId,
    subscriptions: subscriptions.map((s) => (v === 5 ? s : { topic: s.topic, qos: s.qos })),
    ...(props !== undefined ? { properties: props } : {}),
  }) as Packet)
}

function ackArb(v: Version): fc.Arbitrary<Packet> {
  return fc.record({
    cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'),
    messageId: packetId,
    reasonCode: fc.constantFrom(0, 0x10, 0x80, 0x92),
    props: fc.record({ reasonString: fc.string({ maxLength: 8 }), userProperties }, { requiredKeys: [] }),
  }).map(({ cmd, messageId, reasonCode, props }) => (v === 5
    ? { cmd, messageId, reasonCode, properties: props }
    : { cmd, messageId }) as Packet)
}

export function connectArb(v: Version): fc.Arbitrary<Packet> {
  return fc.record({
    clientId: v === 3 ? fc.string({ minLength: 1, maxLength: 20 }) : fc.string({ maxLength: 20 }),
    keepalive: fc.nat({ max: 65_535 }),
    clean: fc.boolean(),
    username: fc.oneof({ arbitrary: fc.constant(undefined), weight: 9 }, { arbitrary: fc.string({ maxLength: 10 }), weight: 1 }),
    will: fc.option(fc.record({ topic: fc.oneof({ arbitrary: fc.constantFrom('m/pub/will', 'm/a'), weight: 4 }, { arbitrary: validTopicArb, weight: 1 }), payload: smallBuf, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(),
      properties: v === 5 ? fc.record({ willDelayInterval: fc.nat(), payloadFormatIndicator: fc.boolean(), contentType: fc.string({ maxLength: 5 }), userProperties }, { requiredKeys: [] }) : fc.constant(undefined) }), { nil: undefined, freq: 2 }),
    props: v === 5 ? fc.record({ sessionExpiryInterval: fc.nat(), receiveMaximum: fc.integer({ min: 1, max: 100 }), topicAliasMaximum: fc.nat({ max: 20 }), requestProblemInformation: fc.boolean(), userProperties }, { requiredKeys: [] }) : fc.constant(undefined),
  }).map(({ clientId, keepalive, clean, username, will, props }) => {
    const packet: Record<string, unknown> = { cmd: 'connect', protocolId: v === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: v, clientId: `fz${clientId}`.slice(0, v === 3 ? 23 : 100), keepalive, clean: v === 3 ? true : clean }
    if (username !== undefined) packet.username = username
    if (will !== undefined) packet.will = will.properties === undefined ? { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain } : will
    if (props !== undefined) packet.properties = props
    return packet as unknown as Packet
  })
}

export function packetArb(v: Version): fc.Arbitrary<Packet> {
  const common: Array<fc.Arbitrary<Packet>> = [
    publishArb(v), publishArb(v), subscribeArb(v), ackArb(v),
    fc.record({ messageId: packetId, unsubscriptions: fc.array(filterArb, { minLength: 1, maxLength: 3 }) }).map((p) => ({ cmd: 'unsubscribe', ...p, ...(v === 5 ? { properties: {} } : {}) }) as Packet),
    fc.constant({ cmd: 'pingreq' } as Packet),
    connectArb(v), // a second CONNECT
    fc.constant({ cmd: 'disconnect', ...(v === 5 ? { reasonCode: 0 } : {}) } as Packet),
  ]
  if (v === 5) common.push(fc.record({ reasonCode: fc.constantFrom(0, 0x18, 0x19), authenticationMethod: fc.string({ maxLength: 5 }) }).map(({ reasonCode, authenticationMethod }) => ({ cmd: 'auth', reasonCode, properties: { authenticationMethod } }) as Packet))
  return fc.oneof(...common)
}

// ---------------------------------------------------------------- raw 5.0 property blocks

/** Types of every 5.0 property: byte, two/four-byte integer, varint, string or binary, string pair. */
const PROP_TYPES: Record<number, 'b' | '2' | '4' | 'v' | 's' | 'p'> = {
  1: 'b', 2: '4', 3: 's', 8: 's', 9: 's', 11: 'v', 17: '4', 18: 's', 19: '2', 21: 's', 22: 's', 23: 'b', 24: '4', 25: 'b',
  26: 's', 28: 's', 31: 's', 33: '2', 34: '2', 35: '2', 36: 'b', 37: 'b', 38: 'p', 39: '4', 40: 'b', 41: 'b', 42: 'b',
}
const PROP_IDS = Object.keys(PROP_TYPES).map(Number)

function str(s: string): Buffer {
  const b = Buffer.from(s)
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function encodeProperty(id: number, n: number, text: string): Buffer {
  switch (PROP_TYPES[id]) {
    case 'b': return Buffer.from([id, n % 3])
    case '2': return Buffer.from([id, (n >> 8) & 0xff, n & 0xff])
    case '4': { const b = Buffer.alloc(5); b[0] = id; b.writeUInt32BE(n >>> 0, 1); return b }
    case 'v': return Buffer.from([id, ...varint(n % 300)])
    case 'p': return Buffer.concat([Buffer.from([id]), str(text), str(text)])
    default: return Buffer.concat([Buffer.from([id]), str(text)])
  }
}

/**
 * A 5.0 property block built byte by byte: any property identifier (allowed in the packet or not),
 * values in and out of range, repeats, and now and then a declared length that does not match.
 */
export const propertyBlockArb: fc.Arbitrary<Buffer> = fc.record({
  props: fc.array(fc.tuple(fc.oneof({ arbitrary: fc.constantFrom(0x26, 0x1f, 0x0b, 0x11), weight: 2 }, { arbitrary: fc.constantFrom(...PROP_IDS), weight: 1 }), fc.nat(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
  delta: fc.oneof({ arbitrary: fc.constant(0), weight: 5 }, { arbitrary: fc.integer({ min: -3, max: 3 }), weight: 1 }),
}).map(({ props, delta }) => {
  const body = Buffer.concat(props.map(([id, n, text]) => encodeProperty(id, n, text)))
  return Buffer.concat([Buffer.from(varint(Math.max(0, body.length + delta))), body])
})

function rawFrame(first: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([first, ...varint(body.length)]), body])
}

/** 5.0 packets of every client type carrying a raw property block. */
export const rawV5PacketArb: fc.Arbitrary<Buffer> = fc.record({
  kind: fc.nat({ max: 8 }),
  props: propertyBlockArb,
  id: fc.integer({ min: 1, max: 65_535 }),
  code: fc.constantFrom(0x00, 0x04, 0x10, 0x18, 0x80, 0x92, 0x81, 0x7f),
  options: fc.nat({ max: 0x3f }),
  filter: fc.constantFrom('m/#', '$share/g/m/x', 'm/a'),
}).map(({ kind, props, id, code, options, filter }) => {
  const pid = Buffer.from([id >> 8, id & 0xff])
  switch (kind) {
    case 0: return rawFrame(0x82, pid, props, str(filter), Buffer.from([options]))
    case 1: return rawFrame(0xa2, pid, props, str(filter))
    case 2: return rawFrame(0x40, pid, Buffer.from([code]), props)
    case 3: return rawFrame(0x62, pid, Buffer.from([code]), props)
    case 4: return rawFrame(0xe0, Buffer.from([code]), props)
    case 5: return rawFrame(0xf0, Buffer.from([code]), props)
    case 6: return rawFrame(0x32, str('m/pub/p'), pid, props, Buffer.from('payload'))
    case 7: return rawFrame(0x50, pid, Buffer.from([code])) // a reason code and no properties
    default: return rawFrame(0x70, pid, Buffer.from([code]), props)
  }
})

/** A 5.0 CONNECT with raw connect and will property blocks (the will on an allowed topic). */
export const rawV5ConnectArb: fc.Arbitrary<Buffer> = fc.record({ connectProps: propertyBlockArb, willProps: propertyBlockArb, id: fc.string({ minLength: 1, maxLength: 8 }) })
  .map(({ connectProps, willProps, id }) => rawFrame(0x10, str('MQTT'), Buffer.from([5, 0x06, 0x00, 0x3c]), connectProps, str(`fz${id}`), willProps, str('m/pub/will'), str('w')))

/** Encodes a packet; null when mqtt-packet refuses to (some generated combinations it cannot write). */
export function encode(packet: Packet, v: Version): Buffer | null {
  try {
    return generate(packet, { protocolVersion: v })
  } catch {
    return null
  }
}

// ---------------------------------------------------------------- mutations

export type Mutation =
  | { op: 'flip'; at: number; value: number }
  | { op: 'bit'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'length'; frame: number; value: number }
  | { op: 'strlen'; frame: number; at: number; value: number }
  | { op: 'splice'; frame: number; from: number; fromFrame: number }
  | { op: 'duplicate'; frame: number }
  | { op: 'drop'; frame: number }

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  fc.record({ op: fc.constant('bit' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 4 }) }),
  fc.record({ op: fc.constant('length' as const), frame: fc.nat(), value: fc.oneof(fc.nat({ max: 300 }), fc.constantFrom(0, 127, 128, 16_383, 16_384, 268_435_455)) }),
  fc.record({ op: fc.constant('strlen' as const), frame: fc.nat(), at: fc.nat(), value: fc.oneof(fc.nat({ max: 300 }), fc.constant(0xffff)) }),
  fc.record({ op: fc.constant('splice' as const), frame: fc.nat(), from: fc.nat(), fromFrame: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), frame: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), frame: fc.nat() }),
)

function varint(value: number): number[] {
  const out: number[] = []
  do {
    let b = value % 128
    value = Math.floor(value / 128)
    if (value > 0) b |= 0x80
    out.push(b)
  } while (value > 0)
  return out
}

/** Splits a valid session's bytes into frames (valid input: no error handling needed). */
export function frames(bytes: Buffer): Buffer[] {
  const out: Buffer[] = []
  let pos = 0
  while (pos + 2 <= bytes.length) {
    let value = 0
    let mult = 1
    let i = pos + 1
    for (; i < bytes.length && i < pos + 5; i++) {
      value += (bytes[i]! & 0x7f) * mult
      mult *= 128
      if ((bytes[i]! & 0x80) === 0) break
    }
    const end = i + 1 + value
    out.push(bytes.subarray(pos, Math.min(end, bytes.length)))
    pos = end
  }
  return out
}

/**
 * Applies mutations to a session (its frames; frame 0 is the CONNECT). Mutations address frames
 * and bytes modulo their sizes, so any generated numbers mean something. `pool` holds the other
 * sessions, for splicing.
 */
export function mutate(session: Buffer[], mutations: readonly Mutation[], pool: readonly Buffer[][]): Buffer {
  let fs: Buffer[] = session.map((f) => Buffer.from(f))
  const pick = (n: number): number => (fs.length <= 1 ? 0 : 1 + (n % (fs.length - 1))) // mostly after the CONNECT
  for (const m of mutations) {
    if (fs.length === 0) break
    switch (m.op) {
      case 'length': {
        const i = m.frame % 7 === 0 ? 0 : pick(m.frame)
        const f = fs[i]!
        let h = 1
        while (h < f.length && h < 5 && (f[h]! & 0x80) !== 0) h++
        fs[i] = Buffer.concat([f.subarray(0, 1), Buffer.from(varint(m.value)), f.subarray(h + 1)])
        break
      }
      case 'strlen': {
        const i = pick(m.frame)
        const f = fs[i]!
        if (f.length > 3) {
          const at = 1 + (m.at % (f.length - 2))
          f.writeUInt16BE(m.value, Math.min(at, f.length - 2))
        }
        break
      }
      case 'splice': {
        const other = pool[m.from % pool.length]!
        if (other.length > 1) fs.splice(pick(m.frame), 0, other[1 + (m.fromFrame % (other.length - 1))]!)
        break
      }
      case 'duplicate': {
        const i = pick(m.frame)
        fs.splice(i, 0, fs[i]!)
        break
      }
      case 'drop':
        if (fs.length > 1) fs.splice(pick(m.frame), 1)
        break
      default: {
        // Byte-level mutations work on the whole stream (they may cross frame boundaries).
        let all = Buffer.concat(fs)
        if (all.length === 0) break
        if (m.op === 'flip') all[m.at % all.length] = m.value
        else if (m.op === 'bit') all[m.at % all.length]! ^= 1 << m.bit
        else if (m.op === 'truncate') all = all.subarray(0, m.at % all.length)
        else {
          const at = m.at % (all.length + 1)
          all = Buffer.concat([all.subarray(0, at), Buffer.from(m.bytes), all.subarray(at)])
        }
        fs = [all]
      }
    }
  }
  return Buffer.concat(fs)
}

/** Cuts `bytes` into chunks of the given sizes (cycled), so frames cross chunk boundaries. */
export function chunk(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  if (sizes.length === 0) return [bytes]
  const out: Buffer[] = []
  let pos = 0
  for (let i = 0; pos < bytes.length; i++) {
    const size = sizes[i % sizes.length]!
    out.push(bytes.subarray(pos, pos + size))
    pos += size
  }
  return out
}

// ---------------------------------------------------------------- the fuzz case

export interface FuzzCase {
  /** Base session: an index into the pool of valid sessions. */
  base: number
  /** Valid packets appended to the base session (by version of the base). */
  extra: Buffer[]
  mutations: Mutation[]
  /** Chunk sizes on the wire; empty: one write. */
  chunks: number[]
}

/** Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) and the reserved type 0. */
const serverOnlyArb = fc.constantFrom('20020000', '2003000000', '9003000100', 'b0020001', 'd000', '0000').map((h) => Buffer.from(h, 'hex'))

export function fuzzCaseArb(pool: readonly Buffer[][], versions: readonly Version[]): fc.Arbitrary<FuzzCase> {
  const extraArb = fc.constantFrom(...versions).chain((v) => fc.array(packetArb(v), { maxLength: 6 }).map((ps) => ps.map((p) => encode(p, v)).filter((b): b is Buffer => b !== null)))
    .chain((extra) => fc.array(rawV5PacketArb, { maxLength: 2 }).map((raw) => [...raw, ...extra]))
    .chain((extra) => fc.array(serverOnlyArb, { maxLength: 1 }).map((server) => [...extra, ...server]))
  return fc.record({
    base: fc.nat({ max: pool.length - 1 }),
    extra: extraArb,
    mutations: fc.array(mutationArb, { minLength: 0, maxLength: 4 }),
    chunks: fc.oneof(fc.constant<number[]>([]), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 })),
  })
}

/** The bytes a case sends, in chunks. */
export function caseBytes(c: FuzzCase, pool: readonly Buffer[][]): Buffer[] {
  const base = pool[c.base % pool.length]!
  return chunk(mutate([...base, ...c.extra], c.mutations, pool), c.chunks)
}

/** Sessions built from the arbitraries: a CONNECT and a few valid packets, per version. */
export function generatedSessions(seed: number, count: number, versions: readonly Version[]): Buffer[][] {
  const arb = fc.constantFrom(...versions).chain((v) => fc.tuple(connectArb(v), fc.array(packetArb(v).filter((p) => p.cmd !== 'connect' && p.cmd !== 'disconnect'), { minLength: 1, maxLength: 6 })).map(([c, ps]) => [c, ...ps].map((p) => encode(p, v)).filter((b): b is Buffer => b !== null)))
  const sessions = fc.sample(arb, { seed, numRuns: count }).filter((s) => s.length > 0 && s[0]![0] === 0x10)
  if (versions.includes(5)) {
    // 5.0 sessions built byte by byte: raw property blocks in the CONNECT, the will and the packets.
    const raw = fc.tuple(rawV5ConnectArb, fc.array(rawV5PacketArb, { minLength: 1, maxLength: 4 })).map(([c, ps]) => [c, ...ps])
    sessions.push(...fc.sample(raw, { seed: seed + 1, numRuns: Math.ceil(count / 3) }))
  }
  return sessions
}

// ---------------------------------------------------------------- driving a live Moat

export interface LiveTarget {
  moat: Moat
  upstream: RecordingUpstream
  stop(): Promise<void>
}

/** Moat with the fuzz policy, in front of a recording upstream that checks every byte. */
export async function startTarget(): Promise<LiveTarget> {
  const upstream = await RecordingUpstream.start(fuzzPolicy)
  const moat = await startMoat(upstream, {
    limits: limitsFrom({ maxPacketSize: '4KiB', connectTimeout: '1s', maxPayload: `${MAX_PAYLOAD}B`, maxInflight: 20, maxSubscriptions: 8 }),
    acl: aclFrom(fuzzAcl),
    // Every fuzz client comes from 127.0.0.1: a lockout would soon ban them all before CONNECT.
    auth: { anonymous: true, lockout: false },
  })
  return {
    moat,
    upstream,
    async stop() {
      await moat.shutdown(0)
      await upstream.stop()
    },
  }
}

/** Valid sessions captured from real MQTT.js clients of each version, as the upstream received them. */
export async function captureSessions(target: LiveTarget, versions: readonly Version[]): Promise<Buffer[][]> {
  const upstream = target.upstream
  upstream.capture = true
  const port = target.moat.address().port
  try {
    for (const protocolVersion of versions) {
      const client = await connect(port, {
        protocolVersion,
        ...(protocolVersion === 5 ? { properties: { topicAliasMaximum: 5, sessionExpiryInterval: 30, userProperties: { a: 'b' } } } : {}),
        will: { topic: 'm/pub/will', payload: Buffer.from('gone'), qos: 1, retain: false },
      })
      await client.subscribeAsync(['m/#', 'm/+/c'], { qos: 1 })
      for (const qos of [0, 1, 2] as const) {
        await client.publishAsync('m/pub/x', `hello ${qos}`, { qos, ...(protocolVersion === 5 ? { properties: { topicAlias: 1, userProperties: { k: 'v' }, contentType: 'text/plain' } } : {}) })
      }
      if (protocolVersion === 5) await client.publishAsync('', 'by alias', { qos: 1, properties: { topicAlias: 1 } })
      await client.publishAsync('m/a', 'retained', { qos: 1, retain: true })
      await client.unsubscribeAsync('m/+/c')
      await client.endAsync()
    }
  } finally {
    upstream.capture = false
  }
  const sessions = upstream.captures.splice(0).map((chunks) => frames(Buffer.concat(chunks)).filter((f) => f[0] !== 0xe0))
  return sessions.filter((s) => s.length > 0)
}

export interface Finding {
  kind: 'upstream_violation' | 'session_not_closed' | 'honest_round_trip_failed' | 'session_leak' | 'memory_growth' | 'error'
  detail: string
  /** The case's bytes, hex, when a case caused it. */
  input?: string[]
}

/**
 * Sends one case on its own socket, then a PINGREQ: a PINGRESP back means Moat processed (and
 * relayed) everything before it; no answer within `quietMs` means the stream ended inside a frame
 * or Moat dropped it. Then the client ends its side. Resolves with whether the connection closed
 * within `timeoutMs` (Moat must never keep a dead client).
 */
export async function sendCase(port: number, chunks: readonly Buffer[], timeoutMs = 20_000, quietMs = 100): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1')
  const splitter = new FrameSplitter()
  let wake: (() => void) | null = null
  socket.on('error', () => {})
  socket.on('data', (d: Buffer) => {
    for (const f of splitter.push(d)) if (f !== 'error' && f[0] === 0xd0) wake?.()
  })
  const closed = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => { socket.destroy(); resolve(false) }, timeoutMs)
    socket.once('close', () => { clearTimeout(timer); wake?.(); resolve(true) })
  })
  await new Promise<void>((resolve) => { socket.once('connect', resolve); socket.once('close', () => resolve()) })
  for (const c of chunks) {
    if (socket.destroyed) break
    socket.write(c)
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  if (!socket.destroyed) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, quietMs)
      wake = () => { clearTimeout(timer); resolve() }
      socket.write(PINGREQ)
    })
  }
  if (!socket.destroyed) socket.end()
  return closed
}

const PINGREQ = Buffer.from([0xc0, 0x00])

/** An honest client that round-trips a QoS 1 message through Moat and the upstream on demand. */
export class HonestClient {
  private n = 0
  private constructor(private readonly client: MqttClient, private readonly topic: string) {}

  static async start(port: number): Promise<HonestClient> {
    const client = await connect(port, { clientId: `honest-${process.pid}`, protocolVersion: 5 })
    const topic = `m/honest/${process.pid}`
    await client.subscribeAsync(topic, { qos: 1 })
    return new HonestClient(client, topic)
  }

  /** Publishes one message and resolves when it comes back (one listener, removed every time). */
  async roundTrip(timeoutMs = 20_000): Promise<void> {
    const payload = `rt-${++this.n}`
    const client = this.client
    const back = new Promise<void>((resolve, reject) => {
      const onMessage = (topic: string, p: Buffer): void => {
        if (topic !== this.topic || String(p) !== payload) return
        clearTimeout(timer)
        client.off('message', onMessage)
        resolve()
      }
      const timer = setTimeout(() => {
        client.off('message', onMessage)
        reject(new Error(`honest message ${payload} did not come back within ${timeoutMs} ms`))
      }, timeoutMs)
      client.on('message', onMessage)
    })
    await client.publishAsync(this.topic, payload, { qos: 1 })
    await back
  }

  async stop(): Promise<void> {
    await this.client.endAsync()
  }
}

/** Closes for a protocol or policy fault (not the client's own disconnect or a shutdown). */
function faultCloses(moat: Moat): number {
  let n = 0
  for (const reason of denyReasons) if (reason !== 'ok') n += moat.stats.closedFor(reason)
  return n
}

let gcFn: (() => void) | null = null
/** Heap used after a full GC (the flag is set at run time, so no special node options are needed). */
export function heapAfterGc(): number {
  if (gcFn === null) {
    v8.setFlagsFromString('--expose-gc')
    gcFn = runInNewContext('gc') as () => void
  }
  gcFn()
  gcFn()
  return process.memoryUsage().heapUsed
}

export interface FuzzOptions {
  seconds: number
  seed: number
  /** Sessions sent at once in each batch. */
  batch?: number
  /** Allowed heap growth between the first and the last third of the run, after GC. */
  memoryBoundBytes?: number
  log?: (line: string) => void
}

export interface FuzzReport {
  seed: number
  batches: number
  cases: number
  upstreamFrames: number
  upstreamConnections: number
  roundTrips: number
  /** Clients Moat itself closed for a protocol or policy fault during the run. */
  closedByMoat: number
  heap: number[]
  findings: Finding[]
}

/**
 * Runs the fuzzer against `target` for `seconds`. Each fast-check run is a batch of cases sent
 * concurrently, then an honest round trip; a batch that produced a finding fails the property
 * (fast-check then reports the seed and path that reproduce it).
 */
export async function runFuzz(target: LiveTarget, pool: readonly Buffer[][], versions: readonly Version[], options: FuzzOptions): Promise<FuzzReport> {
  const port = target.moat.address().port
  const upstream = target.upstream
  const honest = await HonestClient.start(port)
  const report: FuzzReport = { seed: options.seed, batches: 0, cases: 0, upstreamFrames: 0, upstreamConnections: 0, roundTrips: 0, closedByMoat: 0, heap: [], findings: [] }
  const faultClosesBefore = faultCloses(target.moat)
  const started = Date.now()
  const ms = options.seconds * 1000
  const heapMarks = [ms / 3, (2 * ms) / 3]
  report.heap.push(heapAfterGc())
  const batchArb = fc.array(fuzzCaseArb(pool, versions), { minLength: 1, maxLength: options.batch ?? 32 })
  // fast-check's time limit races the batch in flight and returns without waiting for it: keep
  // it, so the run ends only after that batch has finished (and before the honest client stops).
  let inFlight: Promise<boolean> = Promise.resolve(true)
  const runBatch = async (cases: FuzzCase[]): Promise<boolean> => {
    report.batches++
    const before = upstream.violations.length
    const inputs = cases.map((c) => caseBytes(c, pool))
    const closed = await Promise.all(inputs.map((chunks) => sendCase(port, chunks)))
    report.cases += cases.length
    const findings: Finding[] = []
    closed.forEach((ok, i) => {
      if (!ok) findings.push({ kind: 'session_not_closed', detail: 'Moat kept a connection open after the client ended it', input: inputs[i]!.map((b) => b.toString('hex')) })
    })
    try {
      await honest.roundTrip()
      report.roundTrips++
    } catch (err) {
      findings.push({ kind: 'honest_round_trip_failed', detail: (err as Error).message })
    }
    // Every fuzz session must be gone (only the honest one stays).
    const deadline = Date.now() + 20_000
    while (target.moat.sessionCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    if (target.moat.sessionCount > 1) findings.push({ kind: 'session_leak', detail: `${target.moat.sessionCount - 1} fuzz sessions still open` })
    const fresh: Violation[] = upstream.violations.slice(before)
    for (const v of fresh) findings.push({ kind: 'upstream_violation', detail: `${v.why} (bytes: ${v.hex})`, input: inputs.flat().map((b) => b.toString('hex')) })
    const elapsed = Date.now() - started
    while (heapMarks.length > 0 && elapsed >= heapMarks[0]!) {
      heapMarks.shift()
      report.heap.push(heapAfterGc())
    }
    if (findings.length > 0) {
      report.findings.push(...findings)
      // For the on-demand mode's log: keep the minimal inputs too, one per case.
      if (findings.some((f) => f.kind === 'upstream_violation')) {
        for (let i = 0; i < inputs.length; i++) {
          const bytes = Buffer.concat(inputs[i]!)
          report.findings.push({ kind: 'error', detail: `case ${i} of the failing batch`, input: [bytes.toString('hex')] })
        }
      }
      return false
    }
    return true
  }
  try {
    await fc.assert(fc.asyncProperty(batchArb, (cases) => (inFlight = runBatch(cases))), { seed: options.seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, endOnFailure: true })
  } catch (err) {
    report.findings.push({ kind: 'error', detail: (err as Error).message.slice(0, 4000) })
  } finally {
    await inFlight.catch(() => {})
    await honest.stop().catch(() => {})
  }
  report.heap.push(heapAfterGc())
  const bound = options.memoryBoundBytes ?? 32 * 1024 * 1024
  if (report.heap.length >= 3 && report.heap[report.heap.length - 1]! - report.heap[1]! > bound) {
    report.findings.push({ kind: 'memory_growth', detail: `heap after GC grew from ${report.heap[1]} to ${report.heap[report.heap.length - 1]} bytes (bound ${bound})` })
  }
  report.closedByMoat = faultCloses(target.moat) - faultClosesBefore
  report.upstreamFrames = upstream.frames
  report.upstreamConnections = upstream.accepted
  options.log?.(`fuzz seed=${report.seed}: ${report.batches} batches, ${report.cases} cases, ${report.roundTrips} honest round trips, ${report.closedByMoat} clients closed by Moat for a fault, upstream saw ${report.upstreamFrames} frames on ${report.upstreamConnections} connections, heap after GC ${report.heap.map((h) => (h / 1048576).toFixed(1)).join(' → ')} MiB`)
  return report
}
