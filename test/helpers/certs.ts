/**
 * Certificates generated at test time (with `moat certs` logic, i.e. the openssl command) into a
 * temporary directory: a CA, a server certificate for localhost/127.0.0.1, client certificates, a
 * second unrelated CA with its own client (must be refused), and the CA's CRL.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeDevCerts, revokeDevCert, type DevCerts } from '../../src/certs.js'

export interface TestCerts extends DevCerts {
  /** A client certificate from another CA, unknown to Moat. */
  readonly stranger: { readonly cert: string; readonly key: string; readonly ca: string }
  /** Revokes one of this CA's client certificates; returns the rewritten CRL path. */
  revoke(client: string): string
  cleanup(): void
}

export function makeTestCerts(clients: readonly string[] = ['device-1', 'device-2']): TestCerts {
  const root = mkdtempSync(join(tmpdir(), 'moat-certs-'))
  const main = makeDevCerts({ out: join(root, 'main'), clients })
  const other = makeDevCerts({ out: join(root, 'other'), clients: ['device-1'], caName: 'Someone Else CA' })
  return {
    ...main,
    stranger: { ...other.clients['device-1']!, ca: other.ca },
    revoke: (client) => revokeDevCert(main.dir, main.clients[client]!.cert),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  }
}
