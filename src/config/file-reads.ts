/**
 * Whether a config load reads the files the config names (certificates, keys, CA and CRL files,
 * password files, an imported ACL file, JWT keys, the broker password): all of them by default,
 * so a missing or malformed one is found before start; or none, for `moat check --no-files`, which
 * validates a config meant for another machine (a container) where those files exist, and lists
 * what it did not read.
 */
import type { MoatConfig } from './types.js'

export interface SkippedFile {
  /** The config key that names the file, e.g. `listeners.0.tls.cert`. */
  readonly key: string
  readonly path: string
}

export class ConfigFiles {
  readonly skipped: SkippedFile[] = []

  constructor(readonly read: boolean) {}

  /** True (and the file listed) when files are not read: the caller leaves `path` alone. */
  skip(key: string, path: string): boolean {
    if (this.read) return false
    this.skipped.push({ key, path })
    return true
  }
}

/** Every file is read: the default of a load. */
export const READ_FILES = new ConfigFiles(true)

/**
 * The files read after the config is compiled (TLS material, password files), which a load
 * without files leaves unread: listed in config order.
 */
export function skipLaterReads(config: MoatConfig, files: ConfigFiles): void {
  config.listeners.forEach((l, i) => {
    const t = l.tls
    if (t === undefined || t === null) return
    const at = `listeners.${i}.tls`
    files.skip(`${at}.cert`, t.cert)
    files.skip(`${at}.key`, t.key)
    if (t.ca !== null) files.skip(`${at}.ca`, t.ca)
    t.crl.forEach((crl, j) => files.skip(t.crl.length > 1 ? `${at}.crl.${j}` : `${at}.crl`, crl))
    t.sni.forEach((s, j) => {
      files.skip(`${at}.sni.${j}.cert`, s.cert)
      files.skip(`${at}.sni.${j}.key`, s.key)
    })
  })
  const up = config.upstream.tls
  if (up !== undefined && up !== null) {
    if (up.ca !== null) files.skip('upstream.tls.ca', up.ca)
    if (up.cert !== null) files.skip('upstream.tls.cert', up.cert)
    if (up.key !== null) files.skip('upstream.tls.key', up.key)
  }
  config.auth.backends.forEach((b, i) => {
    if (b.type === 'file') files.skip(`auth.backends.${i}.path`, b.path)
  })
}
