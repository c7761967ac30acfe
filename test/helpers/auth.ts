/** Helpers for the auth tests: real password files, CONNECT attempts, a real HTTP auth service. */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { IConnackPacket } from 'mqtt-packet'
import type { ProtocolLevel } from './broker.js'
import { connectPacket, RawClient } from './clients.js'

/** Writes `file` with `mosquitto_passwd` itself (the real tool, its real $7$ hashes). */
export function mosquittoPasswd(file: string, users: Record<string, string>): void {
  let first = true
  for (const [user, password] of Object.entries(users)) {
    execFileSync('mosquitto_passwd', first ? ['-c', '-b', file, user, password] : ['-b', file, user, password])
    first = false
  }
}

export interface Attempt {
  /** CONNACK return code (3.1.1) or reason code (5.0); null when the connection closed without one. */
  code: number | null
  client: RawClient
}

export interface Credentials {
  clientId: string
  username?: string
  password?: string | Buffer
  version?: ProtocolLevel
}

/** One CONNECT through a raw socket; resolves with the CONNACK code (or null). */
export async function attempt(port: number, c: Credentials): Promise<Attempt> {
  const version = c.version ?? 4
  const client = new RawClient(port, version)
  await client.connected()
  const extra: Record<string, unknown> = {}
  if (c.username !== undefined) extra.username = c.username
  if (c.password !== undefined) extra.password = Buffer.isBuffer(c.password) ? c.password : Buffer.from(c.password)
  client.send(connectPacket(c.clientId, version, extra))
  const packet = await client.nextPacket()
  if (packet === null) return { code: null, client }
  if (packet.cmd !== 'connack') throw new Error(`expected CONNACK, got ${packet.cmd}`)
  const connack = packet as IConnackPacket
  return { code: (version === 5 ? connack.reasonCode : connack.returnCode) ?? null, client }
}

/** An attempt that must be refused: returns the code once the connection has closed. */
export async function refused(port: number, c: Credentials): Promise<number | null> {
  const { code, client } = await attempt(port, c)
  await client.closed
  return code
}

export interface AuthRequestBody {
  username: string | null
  password: string | null
  clientId: string
  remoteAddress: string
  certificate: unknown
  [key: string]: unknown
}

type Handler = (body: AuthRequestBody, res: http.ServerResponse) => void

/** A real HTTP auth service on a free port; `handler` answers each POST; requests are recorded. */
export class AuthService {
  readonly requests: AuthRequestBody[] = []
  private readonly server: http.Server
  private readonly held: http.ServerResponse[] = []

  private constructor(server: http.Server) {
    this.server = server
  }

  static async start(handler: Handler): Promise<AuthService> {
    let service: AuthService | null = null
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AuthRequestBody
        service!.requests.push(body)
        handler(body, res)
      })
    })
    service = new AuthService(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return service
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/auth`
  }

  /** Keeps a response open (a slow or hung service) until release() or stop(). */
  hold(res: http.ServerResponse): void {
    this.held.push(res)
  }

  release(answer: unknown): void {
    for (const res of this.held.splice(0)) json(res, 200, answer)
  }

  requestsFor(username: string): number {
    return this.requests.filter((r) => r.username === username).length
  }

  async stop(): Promise<void> {
    for (const res of this.held.splice(0)) res.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}
