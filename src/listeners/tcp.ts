/** A plain TCP listener: accepts sockets and hands each to the proxy. */
import net, { type Server, type Socket } from 'node:net'
import type { ListenerConfig } from '../config/types.js'
import { MoatError } from '../errors.js'
import { plainConnInfo, type ConnInfo } from '../session/conn-info.js'

/** Hands an accepted connection to the proxy, with what the listener learnt about it. */
export type AcceptFn = (socket: Socket, conn: ConnInfo) => void

export class TcpListener {
  readonly config: ListenerConfig
  private readonly server: Server

  constructor(config: ListenerConfig, accept: AcceptFn) {
    this.config = config
    this.server = net.createServer({ noDelay: true }, (socket) => accept(socket, plainConnInfo(config.name, socket.remoteAddress, socket.remotePort)))
  }

  listen(): Promise<void> {
    const { host, port, name } = this.config
    return new Promise((resolve, reject) => {
      const server = this.server
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new MoatError('MOAT_ERR_LISTEN', `listener '${name}' cannot listen on ${host}:${port}: ${err.code ?? err.message}`))
      }
      server.once('error', onError)
      server.listen({ host, port }, () => {
        server.off('error', onError)
        resolve()
      })
    })
  }

  address(): { host: string; port: number } {
    const address = this.server.address()
    if (address === null || typeof address === 'string') throw new Error(`listener '${this.config.name}' is not listening`)
    return { host: address.address, port: address.port }
  }

  get listening(): boolean {
    return this.server.listening
  }

  /**
   * Stops accepting; open connections are not touched. (net.Server's close callback would wait for
   * every connection to end, which is the sessions' business, so it is not awaited here.)
   */
  close(): void {
    if (this.server.listening) this.server.close()
  }
}
