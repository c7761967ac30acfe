/**
 * The listener side of a TLS connection: why a client certificate was refused (at a full handshake,
 * or when a session resumes), and a verified peer certificate as the client's identity.
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

/**
 * Why the certificate of a resumed session is refused now, or null. A resumption restores the
 * certificate checked at the full handshake without checking it again: one that expired since is
 * refused as the full handshake would refuse it. (Revocation needs no check here: a new CRL is a new
 * ticket key, so no session made before it resumes.)
 */
export function resumedCertificateRefusal(socket: TLSSocket, now = Date.now()): string | null {
  const x509 = socket.getPeerX509Certificate()
  if (x509 === undefined) return null
  if (Date.parse(x509.validTo) <= now) return 'client certificate not accepted: CERT_HAS_EXPIRED (resumed session)'
  if (Date.parse(x509.validFrom) > now) return 'client certificate not accepted: CERT_NOT_YET_VALID (resumed session)'
  return null
}
