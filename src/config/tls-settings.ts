/**
 * TLS material named by the config, for listeners (mqtts, wss) and for the broker connection:
 * reading the PEM files, building secure contexts (TLS 1.2+, ciphers, curves, CA, CRLs, SNI
 * certificates) and checking them at config load with the key path and reason of any problem.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import tls, { type SecureContext } from 'node:tls'
import type { ListenerTlsConfig, MoatConfig, UpstreamTlsConfig } from './types.js'

/** A problem with a TLS file or setting: the key path in the config and why. */
export class TlsSettingError extends Error {
  readonly path: Array<string | number>
  constructor(path: Array<string | number>, message: string) {
    super(message)
    this.path = path
  }
}

function readPem(path: Array<string | number>, file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message
    throw new TlsSettingError(path, `cannot read ${file}: ${reason}`)
  }
}

function parseCertificate(path: Array<string | number>, file: string, pem: Buffer): void {
  try {
    new X509Certificate(pem)
  } catch {
    throw new TlsSettingError(path, `${file} is not a PEM certificate`)
  }
}

function parseKey(path: Array<string | number>, file: string, pem: Buffer, passphrase: string | null): void {
  try {
    createPrivateKey(passphrase === null ? { key: pem } : { key: pem, passphrase })
  } catch {
    const text = pem.toString('latin1')
    const encrypted = text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || text.includes('Proc-Type: 4,ENCRYPTED')
    const reason = !encrypted ? 'not a PEM private key' : passphrase === null ? 'the key is encrypted: set passphrase' : 'wrong passphrase'
    throw new TlsSettingError(path, `${file}: ${reason}`)
  }
}

/** Certificate + key of one identity, checked to belong together. */
function identity(prefix: Array<string | number>, certFile: string, keyFile: string, passphrase: string | null): { cert: Buffer; key: Buffer } {
  const cert = readPem([...prefix, 'cert'], certFile)
  parseCertificate([...prefix, 'cert'], certFile, cert)
  const key = readPem([...prefix, 'key'], keyFile)
  parseKey([...prefix, 'key'], keyFile, key, passphrase)
  try {
    tls.createSecureContext(passphrase === null ? { cert, key } : { cert, key, passphrase })
  } catch (err) {
    throw new TlsSettingError([...prefix, 'key'], `${keyFile} does not match the certificate ${certFile} (${(err as Error).message})`)
  }
  return { cert, key }
}

/** The secure contexts of one TLS listener: the default one and one per SNI name. */
export interface ServerTls {
  /** Options of the default context (tls.Server and its setSecureContext() take options, not contexts). */
  readonly options: tls.SecureContextOptions
  readonly context: SecureContext
  /** Exact names (lower case) and `*.domain` wildcards. */
  readonly sni: ReadonlyMap<string, SecureContext>
  /**
   * SHA-256 of what decides who gets in (certificates, CA, CRLs, settings; not the keys): session
   * tickets are sealed under a key derived from it, so new files end every older ticket.
   */
  readonly fingerprint: Buffer
}

/** Reads and checks every file of a listener's `tls`, then builds its contexts. Throws TlsSettingError. */
export function loadServerTls(t: ListenerTlsConfig, prefix: Array<string | number> = ['tls']): ServerTls {
  const { cert, key } = identity(prefix, t.cert, t.key, t.passphrase)
  let ca: Buffer | undefined
  if (t.ca !== null) {
    ca = readPem([...prefix, 'ca'], t.ca)
    parseCertificate([...prefix, 'ca'], t.ca, ca)
  }
  const crl = t.crl.map((file, i) => {
    const path = [...prefix, 'crl', ...(t.crl.length > 1 ? [i] : [])]
    const pem = readPem(path, file)
    try {
      tls.createSecureContext({ crl: pem })
    } catch {
      throw new TlsSettingError(path, `${file} is not a PEM certificate revocation list`)
    }
    return pem
  })
  const common = {
    minVersion: t.minVersion,
    ...(t.ciphers === null ? {} : { ciphers: t.ciphers }),
    ...(t.ecdhCurve === null ? {} : { ecdhCurve: t.ecdhCurve }),
    ...(ca === undefined ? {} : { ca }),
    ...(crl.length === 0 ? {} : { crl }),
    honorCipherOrder: true,
  }
  const options: tls.SecureContextOptions = { ...common, cert, key, ...(t.passphrase === null ? {} : { passphrase: t.passphrase }) }
  const context = create([...prefix], options)
  const sni = new Map<string, SecureContext>()
  const hash = createHash('sha256').update(JSON.stringify([t.clientCert, t.minVersion, t.ciphers, t.ecdhCurve, t.sni.map((e) => e.servername)]))
  for (const pem of [cert, ca ?? Buffer.alloc(0), ...crl]) hash.update(String(pem.length)).update(':').update(pem)
  t.sni.forEach((entry, i) => {
    const own = identity([...prefix, 'sni', i], entry.cert, entry.key, entry.passphrase)
    hash.update(String(own.cert.length)).update(':').update(own.cert)
    sni.set(entry.servername, create([...prefix, 'sni', i], { ...common, ...own, ...(entry.passphrase === null ? {} : { passphrase: entry.passphrase }) }))
  })
  return { options, context, sni, fingerprint: hash.digest() }
}

function create(path: Array<string | number>, options: tls.SecureContextOptions): SecureContext {
  try {
    return tls.createSecureContext(options)
  } catch (err) {
    const message = (err as Error).message
    if (/cipher/i.test(message) && options.ciphers !== undefined) throw new TlsSettingError([...path, 'ciphers'], `no usable cipher in '${options.ciphers}' (${message})`)
    if (/curve|group/i.test(message) && options.ecdhCurve !== undefined) throw new TlsSettingError([...path, 'ecdhCurve'], `unknown curve in '${options.ecdhCurve}' (${message})`)
    throw new TlsSettingError(path, message)
  }
}

/** The SNI context for `servername`: exact match first, then `*.parent`; undefined = the default. */
export function sniContext(server: ServerTls, servername: string): SecureContext | undefined {
  if (server.sni.size === 0) return undefined
  const name = servername.toLowerCase()
  const exact = server.sni.get(name)
  if (exact !== undefined) return exact
  const dot = name.indexOf('.')
  return dot === -1 ? undefined : server.sni.get(`*${name.slice(dot)}`)
}

/** Options of the broker connection's TLS (tls.connect), read from the files. Throws TlsSettingError. */
export function loadUpstreamTls(t: UpstreamTlsConfig, prefix: Array<string | number> = ['upstream', 'tls']): tls.ConnectionOptions {
  const options: tls.ConnectionOptions = { rejectUnauthorized: !t.insecure }
  if (t.ca !== null) {
    const ca = readPem([...prefix, 'ca'], t.ca)
    parseCertificate([...prefix, 'ca'], t.ca, ca)
    options.ca = ca
  }
  if (t.cert !== null && t.key !== null) {
    const own = identity(prefix, t.cert, t.key, t.passphrase)
    options.cert = own.cert
    options.key = own.key
    if (t.passphrase !== null) options.passphrase = t.passphrase
  }
  return options
}

const upstreamOptions = new WeakMap<UpstreamTlsConfig, tls.ConnectionOptions>()

/**
 * The connection options for the broker's TLS, read once per config generation (the config object
 * is replaced on reload, so a reload re-reads the files).
 */
export function upstreamTlsOptions(t: UpstreamTlsConfig): tls.ConnectionOptions {
  let options = upstreamOptions.get(t)
  if (options === undefined) {
    options = loadUpstreamTls(t)
    upstreamOptions.set(t, options)
  }
  return options
}

/** Every TLS file problem in a config (checked at load, so `moat check` reports them). */
export function tlsFileIssues(config: MoatConfig): Array<{ path: Array<string | number>; message: string }> {
  const issues: Array<{ path: Array<string | number>; message: string }> = []
  config.listeners.forEach((l, i) => {
    if (l.tls === undefined || l.tls === null) return
    try {
      loadServerTls(l.tls, ['listeners', i, 'tls'])
    } catch (err) {
      if (!(err instanceof TlsSettingError)) throw err
      issues.push({ path: err.path, message: err.message })
    }
  })
  const up = config.upstream.tls
  if (up !== undefined && up !== null) {
    try {
      upstreamTlsOptions(up)
    } catch (err) {
      if (!(err instanceof TlsSettingError)) throw err
      issues.push({ path: err.path, message: err.message })
    }
  }
  return issues
}
