/**
 * TLS for the TLS targets (direct-tls, haproxy-tls, node-tls-pipe, moat-tls): a development CA and
 * a server certificate made at bench time by `moat certs` (EC P-256 keys, SANs 127.0.0.1 and
 * localhost), and the load generator's side: one client context per CA, TLS 1.3 only, X25519 the
 * first key share offered, the server's certificate chain verified against the made CA (pinned).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'

/** Moat's built CLI (this file runs from .bench-dist/bench/). */
const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))

export interface ServerCerts {
  readonly caFile: string
  readonly certFile: string
  readonly keyFile: string
  /** Certificate then key in one file (HAProxy's `crt`). */
  readonly combinedFile: string
}

/** Makes the CA and the server certificate once per bench run, in `dir`/certs. */
export function serverCerts(dir: string): ServerCerts {
  const out = join(dir, 'certs')
  const certs: ServerCerts = { caFile: join(out, 'ca.crt'), certFile: join(out, 'server.crt'), keyFile: join(out, 'server.key'), combinedFile: join(out, 'combined.pem') }
  if (existsSync(certs.combinedFile)) return certs
  execFileSync(process.execPath, [CLI, 'certs', '--out', out, '--host', '127.0.0.1', '--host', 'localhost'], { stdio: ['ignore', 'ignore', 'inherit'] })
  writeFileSync(certs.combinedFile, Buffer.concat([readFileSync(certs.certFile), readFileSync(certs.keyFile)]))
  return certs
}

/** How the load generator reaches a TLS target: the CA its certificate is checked against. */
export interface TlsClient {
  readonly caFile: string
}

const contexts = new Map<string, tls.SecureContext>()

/**
 * One secure context per CA for every client connection (tls.connect would otherwise parse the CA
 * for each). TLS 1.3 only, so that every target is measured with the same protocol; key shares
 * X25519 then P-256, so X25519 is negotiated wherever the server's default allows it.
 */
export function clientContext(t: TlsClient): tls.SecureContext {
  let c = contexts.get(t.caFile)
  if (c === undefined) {
    c = tls.createSecureContext({ ca: readFileSync(t.caFile), minVersion: 'TLSv1.3', ecdhCurve: 'X25519:P-256' })
    contexts.set(t.caFile, c)
  }
  return c
}

/**
 * A TLS client connection; `session`: offered for resumption. The CA is pinned: OpenSSL verifies
 * the chain against the made CA in every handshake, and a connection whose chain did not verify is
 * destroyed. Node's own check (`rejectUnauthorized: true`) would add the host name check, which
 * converts the whole peer certificate to JavaScript objects on every handshake (a tenth of the
 * client's CPU per handshake here): a cost of the load generator, not of the target, and nothing
 * to check on loopback with a CA made for the run.
 */
export function tlsConnect(t: TlsClient, host: string, port: number, localAddress?: string, session?: Buffer): tls.TLSSocket {
  const s = tls.connect({
    host, port, secureContext: clientContext(t), rejectUnauthorized: false,
    ...(localAddress === undefined ? {} : { localAddress }),
    ...(session === undefined ? {} : { session }),
  })
  s.once('secureConnect', () => {
    if (!s.authorized) s.destroy(new Error(`TLS: the server's certificate did not verify against the bench CA (${String(s.authorizationError)})`))
  })
  return s
}

/** What a handshake negotiated, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519" (for the record). */
export function negotiated(s: tls.TLSSocket): string {
  const key = s.getEphemeralKeyInfo()
  const group = key !== null && typeof key === 'object' && 'name' in key ? String(key.name) : '?'
  return `${s.getProtocol() ?? '?'} ${s.getCipher()?.standardName ?? '?'} ${group}`
}
