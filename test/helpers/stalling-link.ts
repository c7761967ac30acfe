/**
 * A TCP forwarder on loopback in front of a server. After `stall()`, the replies on connections
 * opened from then on are held (the server is slow to answer newcomers) until `resume()`, which
 * passes them on in order; connections opened before keep flowing.
 */
import net from 'node:net'

export class StallingLink {
  private stalled = false
  private readonly held: Array<() => void> = []
  /** Everything passed on to clients so far (latin1), for `passed()`. */
  private sent = ''

  private constructor(private readonly server: net.Server, private readonly sockets: Set<net.Socket>, readonly port: number) {}

  static async start(targetPort: number): Promise<StallingLink> {
    const sockets = new Set<net.Socket>()
    const server = net.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    const link = new StallingLink(server, sockets, (server.address() as net.AddressInfo).port)
    server.on('connection', (client) => link.forward(client, net.connect(targetPort, '127.0.0.1')))
    return link
  }

  private forward(client: net.Socket, target: net.Socket): void {
    for (const s of [client, target]) {
      this.sockets.add(s)
      s.on('error', () => s.destroy())
      s.on('close', () => this.sockets.delete(s))
    }
    const stalled = this.stalled
    // Held replies of this connection, then its close, pass on in order once resumed.
    const pass = (run: () => void): void => {
      if (stalled && this.stalled) this.held.push(run)
      else run()
    }
    client.on('data', (chunk) => target.write(chunk))
    target.on('data', (chunk: Buffer) => pass(() => {
      if (client.destroyed) return
      client.write(chunk)
      this.sent = (this.sent + chunk.toString('latin1')).slice(-65_536)
    }))
    client.on('close', () => target.destroy())
    target.on('close', () => pass(() => client.destroy()))
  }

  /** Whether `text` was passed on to a client (in the last 64 KiB). */
  passed(text: string): boolean {
    return this.sent.includes(text)
  }

  /** Replies on connections opened from now on are held. */
  stall(): void {
    this.stalled = true
  }

  /** Passes on what was held, and lets everything through again. */
  resume(): void {
    this.stalled = false
    for (const run of this.held.splice(0)) run()
  }

  async stop(): Promise<void> {
    this.resume()
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
