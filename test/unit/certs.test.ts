import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { makeTestCerts } from '../helpers/certs.js'

const certs = makeTestCerts(['device-1', 'device-2'])
afterAll(() => certs.cleanup())

function verify(cert: string, crl: boolean): string {
  try {
    return execFileSync('openssl', ['verify', '-CAfile', certs.ca, ...(crl ? ['-crl_check', '-CRLfile', certs.crl] : []), cert], { stdio: 'pipe' }).toString()
  } catch (err) {
    return (err as { stdout: Buffer }).stdout.toString() + (err as { stderr: Buffer }).stderr.toString()
  }
}

describe('moat certs (makeDevCerts)', () => {
  it('makes a server certificate for localhost and 127.0.0.1, signed by the CA', () => {
    const x = new X509Certificate(readFileSync(certs.server.cert))
    expect(x.subjectAltName).toContain('DNS:localhost')
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1')
    expect(x.checkIssued(new X509Certificate(readFileSync(certs.ca)))).toBe(true)
    expect(verify(certs.server.cert, false)).toMatch(/: OK/)
  })

  it('makes client certificates with CN and SAN from the name', () => {
    const x = new X509Certificate(readFileSync(certs.clients['device-1']!.cert))
    expect(x.subject).toMatch(/CN=device-1/)
    expect(x.subjectAltName).toBe('DNS:device-1')
    expect(verify(certs.clients['device-1']!.cert, true)).toMatch(/: OK/)
  })

  it('a stranger certificate does not verify against the CA', () => {
    expect(verify(certs.stranger.cert, false)).not.toMatch(/: OK/)
  })

  it('revokes a client certificate through the CRL', () => {
    certs.revoke('device-2')
    expect(verify(certs.clients['device-2']!.cert, true)).toMatch(/revoked/)
    expect(verify(certs.clients['device-1']!.cert, true)).toMatch(/: OK/)
  })
})
