/**
 * The listener side of a TLS connection: why a client certificate was refused, and a verified peer
 * certificate as the client's identity (ClientCertificate).
 */
import type { TLSSocket } from 'node:tls'
import type { ClientCertificate } from '../client/conn-info.js'

/** OpenSSL's error when a client sent no certificate to a listener that requires one. */
const NO_CLIENT_CERTIFICATE = 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'

/**
 * Why a listener's client-certificate check refused a TLS socket (the log's detail), or null when
 * it did not. With `clientCert: required` the server rejects unauthorized peers itself, so a
 * refusal surfaces as a `tlsClientError`: a missing certificate as OpenSSL's own error (after it
 * sent the client the alert), a certificate that does not verify as `authorizationError` on the
 * socket Node closed.
 */
export function clientCertRefusal(socket: TLSSocket, err: NodeJS.ErrnoException | null = null): string | null {
  if (err?.code === NO_CLIENT_CERTIFICATE) return 'no client certificate'
  const reason = socket.authorizationError
  if (reason !== undefined && reason !== null) return `client certificate not accepted: ${String(reason)}`
  if (err === null && socket.getPeerX509Certificate() === undefined) return 'no client certificate'
  return null
}

/** The verified peer certificate of a TLS socket as the client's identity, or null when none. */
export function peerCertificate(socket: TLSSocket): ClientCertificate | null {
  const x509 = socket.getPeerX509Certificate()
  if (x509 === undefined) return null
  const rdns = x509.subject.split('\n')
  const cnLine = rdns.find((r) => r.startsWith('CN='))
  return Object.freeze({
    subject: rdns.join(','),
    cn: cnLine === undefined ? '' : cnLine.slice(3),
    sans: Object.freeze(x509.subjectAltName === undefined ? [] : x509.subjectAltName.split(', ')),
    fingerprint256: x509.fingerprint256,
  })
}
