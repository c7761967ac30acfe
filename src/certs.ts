/**
 * `moat certs --out DIR`: a development CA, a server certificate and client certificates, for
 * trying mqtts/wss and mutual TLS, and for the tests. Node has no X.509 generator, so this calls the
 * `openssl` command (OpenSSL 1.1.1 or 3.x). Keys are EC P-256. NOT for production: the CA key sits
 * next to the certificates, unencrypted.
 *
 *   DIR/ca.crt ca.key        the CA (listeners' `tls.ca`, clients' trust anchor)
 *   DIR/server.crt server.key  for `tls.cert` / `tls.key`; SANs: the --host names (default localhost, 127.0.0.1, ::1)
 *   DIR/NAME.crt NAME.key      one client per --client NAME (default device-1); CN=NAME, SAN DNS:NAME
 *   DIR/ca.crl                 the CA's revocation list (empty until revokeDevCert)
 *   DIR/ca.cnf index.txt crlnumber   the bookkeeping `openssl ca` needs to revoke
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { MoatError } from './errors.js'

export interface DevCertsOptions {
  readonly out: string
  /** Client certificate names (CN and file name). */
  readonly clients?: readonly string[]
  /** Host names and IP addresses the server certificate is valid for. */
  readonly hosts?: readonly string[]
  /** CN of the CA (tests make a second, unrelated CA with another name). */
  readonly caName?: string
  readonly days?: number
}

export interface DevCerts {
  readonly dir: string
  readonly ca: string
  readonly caKey: string
  readonly crl: string
  readonly server: { readonly cert: string; readonly key: string }
  readonly clients: Readonly<Record<string, { readonly cert: string; readonly key: string }>>
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    if (e.code === 'ENOENT') throw new MoatError('MOAT_ERR_CERTS', 'moat certs needs the openssl command (apt-get install openssl)')
    throw new MoatError('MOAT_ERR_CERTS', `openssl ${args[0]} failed: ${e.stderr?.toString().trim() ?? e.message}`)
  }
}

function serial(): string {
  return '0x' + randomBytes(8).toString('hex')
}

function leaf(dir: string, name: string, subject: string, ext: string, days: number): { cert: string; key: string } {
  const key = `${name}.key`
  const cert = `${name}.crt`
  writeFileSync(join(dir, `${name}.ext`), ext)
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', `${name}.csr`, '-subj', subject])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial(), '-days', String(days), '-sha256', '-extfile', `${name}.ext`, '-out', cert])
  chmodSync(join(dir, key), 0o600)
  return { cert: join(dir, cert), key: join(dir, key) }
}

export function makeDevCerts(options: DevCertsOptions): DevCerts {
  const dir = resolve(options.out)
  const clients = options.clients ?? ['device-1']
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1']
  const days = options.days ?? 825
  for (const name of [...clients, 'ca', 'server']) {
    if (!NAME.test(name)) throw new MoatError('MOAT_ERR_CERTS', `'${name}' is not a usable certificate name (letters, digits, _ . -)`)
  }
  if (clients.some((c) => c === 'ca' || c === 'server')) throw new MoatError('MOAT_ERR_CERTS', "client names 'ca' and 'server' are taken")
  mkdirSync(dir, { recursive: true })
  const caName = options.caName ?? 'Moat Development CA'
  openssl(dir, ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-days', String(days), '-subj', `/O=Moat development/CN=${caName}`, '-set_serial', serial(),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash'])
  chmodSync(join(dir, 'ca.key'), 0o600)
  const sans = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',')
  const server = leaf(dir, 'server', `/O=Moat development/CN=${hosts[0] ?? 'localhost'}`,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`, days)
  const issued: Record<string, { cert: string; key: string }> = {}
  for (const name of clients) {
    issued[name] = leaf(dir, name, `/O=Moat development/CN=${name}`,
      `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:${name}\n`, days)
  }
  writeFileSync(join(dir, 'ca.cnf'), [
    '[ ca ]', 'default_ca = moat_ca', '', '[ moat_ca ]', 'dir = .', 'database = $dir/index.txt', 'crlnumber = $dir/crlnumber',
    'certificate = $dir/ca.crt', 'private_key = $dir/ca.key', 'default_md = sha256', `default_crl_days = ${days}`, '',
  ].join('\n'))
  if (!existsSync(join(dir, 'index.txt'))) writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'crlnumber'), '1000\n')
  openssl(dir, ['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'ca.crl'])
  return { dir, ca: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), crl: join(dir, 'ca.crl'), server, clients: issued }
}

/** Revokes a certificate this CA issued and rewrites DIR/ca.crl; returns the CRL's path. */
export function revokeDevCert(dir: string, certFile: string): string {
  openssl(dir, ['ca', '-config', 'ca.cnf', '-revoke', resolve(dir, certFile)])
  openssl(dir, ['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'ca.crl'])
  return join(dir, 'ca.crl')
}
