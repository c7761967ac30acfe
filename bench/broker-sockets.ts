/**
 * What went into the broker, counted by the kernel on both ends of every TCP connection to the
 * broker's port, from `ss -tin` (iproute2, netlink `tcp_info`; no process is touched):
 *
 * - on the broker's end: the bytes the broker has read (`bytes_received` minus Recv-Q, what waits
 *   unread) and the bytes it has sent;
 * - on the other end (a proxy's upstream connection, or the client itself when direct): the bytes
 *   that process has written into the connection (`bytes_acked` plus Send-Q, what is written but
 *   not yet acknowledged).
 *
 * The same count for every target: the broker's connections do not know what is at their other
 * end, and the proxy's writes are counted where the proxy hands them to the kernel.
 */
import { execFile } from 'node:child_process'

export interface BrokerEnd {
  /** Bytes the broker has read from the connection so far. */
  readonly read: number
  /** Bytes the broker has sent on it so far. */
  readonly sent: number
}

export interface BrokerSockets {
  /** The broker's end of each connection, keyed by the other end's address:port. */
  readonly broker: Map<string, BrokerEnd>
  /** The other end of each connection (keyed by its own address:port): bytes written into it so far. */
  readonly written: Map<string, number>
}

function field(info: string, name: string): number {
  const m = new RegExp(`\\b${name}:(\\d+)`).exec(info)
  return m === null ? 0 : Number(m[1])
}

/** Parses `ss -tinH state established` output: a line "Recv-Q Send-Q local peer", then one of tcp_info. */
export function parseSs(out: string, brokerAddress: string): BrokerSockets {
  const broker = new Map<string, BrokerEnd>()
  const written = new Map<string, number>()
  const lines = out.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const head = lines[i]!.trim().split(/\s+/)
    if (head.length < 4 || !/^\d+$/.test(head[0]!)) continue
    const info = lines[i + 1] ?? ''
    i++
    const [recvQ, sendQ, local, peer] = [Number(head[0]), Number(head[1]), head[2]!, head[3]!]
    if (local === brokerAddress) {
      broker.set(peer, { read: field(info, 'bytes_received') - recvQ, sent: field(info, 'bytes_sent') || field(info, 'bytes_acked') })
    } else if (peer === brokerAddress) {
      written.set(local, field(info, 'bytes_acked') + sendQ)
    }
  }
  return { broker, written }
}

/** Both ends of every established connection to the broker on 127.0.0.1:`port` (asynchronous: the load generator keeps running). */
export function brokerSockets(port: number): Promise<BrokerSockets> {
  return new Promise((resolve, reject) => {
    execFile('ss', ['-tinH', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { maxBuffer: 64 << 20 }, (err, stdout) => {
      if (err) reject(err)
      else resolve(parseSs(stdout, `127.0.0.1:${port}`))
    })
  })
}

export interface BrokerFlow {
  /** Bytes the broker read in the window from every connection but the subscriber's. */
  readonly readBytes: number
  /** Bytes written into those connections in the window by whatever is at their other end (proxy, or publishers when direct). */
  readonly writtenBytes: number
  /** Connections present at both ends of the window (broker's end). */
  readonly connections: number
}

/**
 * The difference between two snapshots, over the connections present in both. The connection on
 * which the broker *sent* the most in the window is the subscriber's (every delivered message goes
 * to it; a publisher gets at most a PUBACK per message): what goes into the broker on it (PUBACKs of
 * QoS 1 deliveries) is not a publication, and is left out.
 */
export function brokerFlow(before: BrokerSockets, after: BrokerSockets): BrokerFlow {
  let readBytes = 0
  let connections = 0
  let topSent = -1
  let topPeer = ''
  for (const [peer, end] of after.broker) {
    const start = before.broker.get(peer)
    if (start === undefined) continue
    connections++
    readBytes += end.read - start.read
    if (end.sent - start.sent > topSent) {
      topSent = end.sent - start.sent
      topPeer = peer
    }
  }
  if (topPeer !== '') readBytes -= after.broker.get(topPeer)!.read - before.broker.get(topPeer)!.read
  let writtenBytes = 0
  for (const [local, end] of after.written) {
    const start = before.written.get(local)
    if (start !== undefined && local !== topPeer) writtenBytes += end - start
  }
  return { readBytes, writtenBytes, connections }
}
