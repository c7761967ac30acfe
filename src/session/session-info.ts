/** What an operator (the admin endpoint) and the tests see of one session. */
import type { ClientCertificate, Transport } from './conn-info.js'
import type { ReadMode } from './events.js'

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
