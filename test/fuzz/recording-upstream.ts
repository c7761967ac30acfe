/**
 * The broker stand-in of the fuzz suite: a plain TCP server (a real socket server, not a mock of
 * Moat) that answers CONNECT, SUBSCRIBE, UNSUBSCRIBE, QoS 1/2 PUBLISH and PINGREQ minimally,
 * delivers each PUBLISH to the connections subscribed to its topic (QoS 0), and — its real job —
 * runs every byte it receives through the strict grammar and the test's policy (grammar.ts).
 * Anything that fails is kept in `violations` with its bytes, so a test can say exactly what
 * slipped through Moat.
 */
import net from 'node:net'
import { once } from 'node:events'
import { generate } from 'mqtt-packet'
import { allowAll, ClientStream, FrameSplitter, type Policy } from './grammar.js'

export interface Violation {
  connection: number
  why: string
  hex: string
}

/** Topic alias maximum the upstream grants 5.0 clients, so aliases are exercised. */
export const UPSTREAM_TOPIC_ALIAS_MAXIMUM = 10

interface Conn {
  id: number
  socket: net.Socket
  stream: ClientStream
  splitter: FrameSplitter
  filters: string[]
  /** The bytes this connection sent, kept when `capture` is on. */
  captured: Buffer[] | null
}

function matches(filter: string, topic: string): boolean {
  if (filter.startsWith('$share/')) filter = filter.split('/').slice(2).join('/')
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/** The position after a property block (a varint length, then that many bytes) at `pos`. */
function skipVarintBlock(frame: Buffer, pos: number): number {
  let length = 0
  let mult = 1
  for (;;) {
    const b = frame[pos++]!
    length += (b & 0x7f) * mult
    mult *= 128
    if ((b & 0x80) === 0) break
  }
  return pos + length
}

export class RecordingUpstream {
  readonly violations: Violation[] = []
  /** Frames received (all connections), and connections accepted. */
  frames = 0
  accepted = 0
  /** Keep every connection's bytes (for capturing valid sessions). */
  capture = false
  readonly captures: Buffer[][] = []
  private readonly server: net.Server
  private readonly conns = new Set<Conn>()
  private nextId = 0

  constructor(private readonly policy: Policy = allowAll) {
    this.server = net.createServer((socket) => this.onConnection(socket))
  }

  static async start(policy: Policy = allowAll): Promise<RecordingUpstream> {
    const upstream = new RecordingUpstream(policy)
    upstream.server.listen(0, '127.0.0.1')
    await once(upstream.server, 'listening')
    return upstream
  }

  get host(): string {
    return '127.0.0.1'
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port
  }

  get openConnections(): number {
    return this.conns.size
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++
    const conn: Conn = { id: this.nextId++, socket, stream: new ClientStream(this.policy, UPSTREAM_TOPIC_ALIAS_MAXIMUM), splitter: new FrameSplitter(), filters: [], captured: this.capture ? [] : null }
    if (conn.captured !== null) this.captures.push(conn.captured)
    this.conns.add(conn)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      conn.captured?.push(Buffer.from(chunk))
      for (const frame of conn.splitter.push(chunk)) {
        if (frame === 'error') {
          this.violations.push({ connection: conn.id, why: 'remaining length longer than 4 bytes', hex: '' })
          socket.destroy()
          return
        }
        this.frames++
        const why = conn.stream.check(frame)
        if (why !== null) {
          this.violations.push({ connection: conn.id, why, hex: frame.subarray(0, 256).toString('hex') })
          // A real broker would close here; so does the stand-in.
          socket.destroy()
          return
        }
        this.answer(conn, frame)
      }
    })
    socket.on('error', () => { /* Moat may reset; the record is what matters */ })
    socket.on('close', () => {
      // Bytes of a packet cut off by the close were never a packet: not forwarded, not a fault.
      this.conns.delete(conn)
    })
  }

  private answer(conn: Conn, frame: Buffer): void {
    const type = frame[0]! >> 4
    const v = conn.stream.version
    let at = 1
    while ((frame[at]! & 0x80) !== 0) at++
    const body = at + 1
    const write = (b: Buffer): void => { if (!conn.socket.destroyed) conn.socket.write(b) }
    switch (type) {
      case 1:
        write(v === 5 ? generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: { topicAliasMaximum: UPSTREAM_TOPIC_ALIAS_MAXIMUM } }, { protocolVersion: 5 }) : Buffer.from([0x20, 0x02, 0x00, 0x00]))
        return
      case 3: {
        const qos = (frame[0]! >> 1) & 0x03
        const topicLength = frame.readUInt16BE(body)
        const topic = frame.toString('utf8', body + 2, body + 2 + topicLength)
        let pos = body + 2 + topicLength
        const id = qos > 0 ? frame.readUInt16BE(pos) : 0
        if (qos > 0) pos += 2
        if (qos === 1) write(Buffer.from([0x40, 0x02, id >> 8, id & 0xff]))
        if (qos === 2) write(Buffer.from([0x50, 0x02, id >> 8, id & 0xff]))
        if (topic.length === 0) return // alias-only: not routed by the stand-in
        if (v === 5) pos = skipVarintBlock(frame, pos) // properties (the grammar checked them)
        const payload = frame.subarray(Math.min(pos, frame.length))
        for (const other of this.conns) {
          if (other.filters.some((f) => matches(f, topic))) {
            if (!other.socket.destroyed) other.socket.write(generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, { protocolVersion: other.stream.version || 4 }))
          }
        }
        return
      }
      case 6:
        write(Buffer.from([0x70, 0x02, frame[body]!, frame[body + 1]!]))
        return
      case 8: {
        const id = frame.readUInt16BE(body)
        let pos = body + 2
        if (v === 5) pos = skipVarintBlock(frame, pos)
        const codes: number[] = []
        while (pos < frame.length) {
          const l = frame.readUInt16BE(pos)
          conn.filters.push(frame.toString('utf8', pos + 2, pos + 2 + l))
          codes.push(frame[pos + 2 + l]! & 0x03)
          pos += 3 + l
        }
        write(generate({ cmd: 'suback', messageId: id, granted: codes, ...(v === 5 ? { properties: {} } : {}) } as never, { protocolVersion: v }))
        return
      }
      case 10: {
        const id = frame.readUInt16BE(body)
        if (v !== 5) {
          write(Buffer.from([0xb0, 0x02, id >> 8, id & 0xff]))
          return
        }
        const codes: number[] = []
        for (let pos = skipVarintBlock(frame, body + 2); pos < frame.length; pos += 2 + frame.readUInt16BE(pos)) codes.push(0)
        write(generate({ cmd: 'unsuback', messageId: id, granted: codes } as never, { protocolVersion: 5 }))
        return
      }
      case 12:
        write(Buffer.from([0xd0, 0x00]))
        return
      case 14:
        conn.socket.end()
    }
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.socket.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
