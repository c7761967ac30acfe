/**
 * A real Aedes broker in this process, on a free loopback port. Each accepted socket is also
 * watched: the bytes the broker read from it are decoded, so a test can see exactly what the
 * broker received on each connection (Aedes processes publishes asynchronously, so its own events
 * are not a sound record of "received"; its socket is).
 */
import net from 'node:net'
import { once } from 'node:events'
import { Aedes } from 'aedes'
import { parser as createParser, type Packet } from 'mqtt-packet'

export interface AedesConnection {
  clientId: string | null
  /** Packets the broker read on this connection, as 'connect', 'publish <topic>', 'subscribe', … */
  readonly received: string[]
  closed: boolean
}

export interface AedesBroker {
  readonly host: string
  readonly port: number
  readonly broker: Aedes
  readonly connections: AedesConnection[]
  /** Called whenever a connection reads a packet or closes. */
  onChange(listener: () => void): () => void
  stop(): Promise<void>
}

function describePacket(packet: Packet): string {
  return packet.cmd === 'publish' ? `publish ${packet.topic}` : packet.cmd
}

export async function startAedes(): Promise<AedesBroker> {
  const broker = await Aedes.createBroker()
  const server = net.createServer(broker.handle)
  const connections: AedesConnection[] = []
  const listeners = new Set<() => void>()
  const changed = (): void => { for (const l of listeners) l() }
  server.on('connection', (socket: net.Socket) => {
    const connection: AedesConnection = { clientId: null, received: [], closed: false }
    connections.push(connection)
    let parser = createParser()
    const onPacket = (packet: Packet): void => {
      if (packet.cmd === 'connect') {
        connection.clientId = packet.clientId
        // Later packets decode with the version the client announced.
        parser = createParser({ protocolVersion: packet.protocolVersion ?? 4 })
        parser.on('packet', onPacket)
        parser.on('error', () => connection.received.push('malformed'))
      }
      connection.received.push(describePacket(packet))
      changed()
    }
    parser.on('packet', onPacket)
    parser.on('error', () => connection.received.push('malformed'))
    // With Aedes' 'readable' listener in place, 'data' only observes what the broker read.
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.on('close', () => {
      connection.closed = true
      changed()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  return {
    host: '127.0.0.1',
    port,
    broker,
    connections,
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async stop() {
      server.close()
      await new Promise<void>((resolve) => broker.close(() => resolve()))
    },
  }
}
