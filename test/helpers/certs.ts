/**
 * Certificates generated at test time (with `moat certs` logic, i.e. the openssl command) into a
 * temporary directory: a CA, a server certificate for localhost/127.0.0.1, client certificates, a
 * second unrelated CA with its own client (must be refused), a client certificate of the CA that
 * has expired, and the CA's CRL.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeDevCerts, revokeDevCert, type DevCerts } from '../../src/certs.js'

export interface TestCerts extends DevCerts {
  /** A client certificate from another CA, unknown to Moat. */
  readonly stranger: { readonly cert: string; readonly key: string; readonly ca: string }
  /** A client certificate from this CA whose validity ended long ago. */
  readonly expired: { readonly cert: string; readonly key: string }
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
    expired: expiredClient(main.dir),
    revoke: (client) => revokeDevCert(main.dir, main.clients[client]!.cert),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  }
}

/**
 * `openssl x509 -days` cannot date a certificate in the past; `openssl ca` takes explicit dates. Its
 * own database keeps the expired certificate out of the CA's CRL.
 */
function expiredClient(dir: string): { cert: string; key: string } {
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }) }
  mkdirSync(join(dir, 'expired-issued'), { recursive: true })
  writeFileSync(join(dir, 'expired-index.txt'), '')
  writeFileSync(join(dir, 'expired-serial'), '1000\n')
  writeFileSync(join(dir, 'expired.cnf'), [
    '[ ca ]', 'default_ca = expired_ca', '', '[ expired_ca ]', 'dir = .', 'database = $dir/expired-index.txt', 'serial = $dir/expired-serial',
    'new_certs_dir = $dir/expired-issued', 'certificate = $dir/ca.crt', 'private_key = $dir/ca.key', 'default_md = sha256', 'policy = any', '',
    '[ any ]', 'commonName = supplied', '',
  ].join('\n'))
  writeFileSync(join(dir, 'expired.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:expired\n')
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/O=Moat development/CN=expired'])
  run(['ca', '-batch', '-notext', '-config', 'expired.cnf', '-in', 'expired.csr', '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', 'expired.ext', '-out', 'expired.crt'])
  return { cert: join(dir, 'expired.crt'), key: join(dir, 'expired.key') }
}
