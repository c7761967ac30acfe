/** What an operator (the admin endpoint) and the tests see of one session. */
import type { ClientCertificate, Transport } from '../client/conn-info.js'
import type { ReadMode } from './events.js'
import type { Session } from './session.js'

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
  /** Bytes waiting to be written to the client / to the broker. */
  readonly clientWriteBuffer: number
  readonly brokerWriteBuffer: number
  /** Bytes received and not yet handed on (a partial frame, or held while waiting). */
  readonly clientReadBuffer: number
  readonly brokerReadBuffer: number
  readonly clientPaused: boolean
  readonly brokerPaused: boolean
  /** How each side is read (events.ts). */
  readonly clientReads: ReadMode
  readonly brokerReads: ReadMode | null
  readonly transport: Transport
  readonly tlsVersion: string | null
  /** The verified client certificate (mutual TLS): subject, CN, SANs, fingerprint. */
  readonly certificate: ClientCertificate | null
}

/** A snapshot: identity, buffers, and whether each side is paused. */
export function sessionInfo(session: Session): SessionInfo {
  const s = session.state
  const flow = session.flow
  return {
    id: s.id,
    listener: s.listener,
    remote: `${s.remoteAddress}:${s.remotePort}`,
    clientId: s.clientId,
    username: s.username,
    authenticatedBy: s.authenticatedBy,
    claims: s.claims,
    groups: s.groups,
    version: s.version,
    clientWriteBuffer: session.client.writableLength + (session.client.bufferedAmount ?? 0),
    brokerWriteBuffer: session.upstream?.writableLength ?? 0,
    clientReadBuffer: session.clientFramer.bufferedBytes,
    brokerReadBuffer: session.brokerFramer.bufferedBytes,
    clientPaused: !flow.readingClient,
    brokerPaused: flow.brokerPaused,
    clientReads: flow.clientReads,
    brokerReads: flow.brokerReads,
    transport: s.transport,
    tlsVersion: s.tlsVersion,
    certificate: s.certificate,
  }
}
