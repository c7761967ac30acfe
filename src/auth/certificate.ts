/**
 * The `certificate` backend: the client certificate the TLS listener verified (mutual TLS) alone
 * identifies the client; the user name comes from the field named by `usernameFrom`. Without a
 * verified certificate, or when that field is empty: no opinion.
 */
import type { CertificateBackendConfig, CertificateField } from '../config/types.js'
import type { ClientCertificate } from '../client/conn-info.js'
import { NO_OPINION, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'

const SAN_PREFIX: Partial<Record<CertificateField, string>> = { 'san-dns': 'DNS:', 'san-email': 'email:', 'san-uri': 'URI:' }

export function certificateName(cert: ClientCertificate, field: CertificateField): string {
  switch (field) {
    case 'cn': return cert.cn
    case 'subject': return cert.subject
    case 'fingerprint': return cert.fingerprint256
    default: {
      const prefix = SAN_PREFIX[field]!
      const san = cert.sans.find((s) => s.startsWith(prefix))
      return san === undefined ? '' : san.slice(prefix.length)
    }
  }
}

export class CertificateBackend implements AuthBackend {
  readonly type = 'certificate'
  private readonly field: CertificateField

  constructor(config: CertificateBackendConfig) {
    this.field = config.usernameFrom
  }

  authenticate(req: AuthRequest): Promise<AuthResult> {
    const cert = req.certificate
    if (cert === null) return Promise.resolve(NO_OPINION)
    const name = certificateName(cert, this.field)
    if (name === '') return Promise.resolve(NO_OPINION)
    return Promise.resolve({
      outcome: 'allow',
      username: name,
      claims: Object.freeze({ 'cert.cn': cert.cn, 'cert.subject': cert.subject, 'cert.fingerprint': cert.fingerprint256 }),
    })
  }

  cacheKey(req: AuthRequest): string {
    return req.certificate?.fingerprint256 ?? ''
  }
}
