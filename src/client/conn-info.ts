/**
 * What a listener knows about a connection before the first MQTT byte: where it really comes from
 * (the PROXY protocol header when the listener reads one, the socket otherwise), over which
 * transport, and the verified client certificate (mutual TLS). The Session copies it into
 * SessionState, where checks, logs and metrics read it.
 */
import type { Duplex } from 'node:stream'

/** A client certificate that the TLS handshake verified against the listener's CA. */
export interface ClientCertificate {
  /** Subject distinguished name, e.g. `CN=device-1,O=Acme`. */
  readonly subject: string
  /** Subject common name ('' when the subject has none). */
  readonly cn: string
  /** Subject alternative names as `DNS:…`, `URI:…`, `email:…`, `IP Address:…`. */
  readonly sans: readonly string[]
  /** SHA-256 fingerprint, colon-separated upper-case hex (as Node reports it). */
  readonly fingerprint256: string
}

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

export interface ConnInfo {
  /** Name of the listener that accepted the connection. */
  readonly listener: string
  readonly remoteAddress: string
  readonly remotePort: number
  readonly transport: Transport
  /** Negotiated TLS version (`TLSv1.3`), null on plain transports. */
  readonly tlsVersion: string | null
  /** Null without mutual TLS, or when the client presented no (verified) certificate. */
  readonly certificate: ClientCertificate | null
}

/** ConnInfo for a plain TCP socket (no PROXY header, no TLS). */
export function plainConnInfo(listener: string, remoteAddress: string | undefined, remotePort: number | undefined): ConnInfo {
  return { listener, remoteAddress: remoteAddress ?? '', remotePort: remotePort ?? 0, transport: 'tcp', tlsVersion: null, certificate: null }
}

/**
 * What a Session needs from the client connection: a Duplex with a socket's counters. A TCP or TLS
 * socket is one as it is; a WebSocket is adapted to it (listeners/ws.ts).
 */
export interface ClientSocket extends Duplex {
  readonly bytesRead: number
  readonly bytesWritten: number
  /** Bytes queued below the stream (a WebSocket's own buffer); absent on TCP/TLS sockets. */
  readonly bufferedAmount?: number
}
