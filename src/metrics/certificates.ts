/**
 * When each certificate Moat presents stops being valid: every TLS listener's certificate and its
 * SNI certificates, and the client certificate it shows the broker (`upstream.tls.cert`). Read from
 * the files of the running config once per policy generation: a reload re-reads the files, and a
 * renewed certificate is picked up by the listeners and by this gauge together.
 *
 *   moat_tls_certificate_not_after_timestamp_seconds{certificate,listener,servername,file}
 *     certificate="listener" (listener), "sni" (listener, servername) or "upstream_client"
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Gauge, type Registry } from 'prom-client'
import type { MoatConfig } from '../config/types.js'

type CertificateLabels = { certificate: 'listener'; listener: string } | { certificate: 'sni'; listener: string; servername: string } | { certificate: 'upstream_client' }

/** Every certificate file of a config that Moat presents, labelled by where it is used. */
export function presentedCertificates(config: MoatConfig): Array<{ labels: CertificateLabels; file: string }> {
  const out: Array<{ labels: CertificateLabels; file: string }> = []
  for (const l of config.listeners) {
    if (l.tls === undefined || l.tls === null) continue
    out.push({ labels: { certificate: 'listener', listener: l.name }, file: l.tls.cert })
    for (const sni of l.tls.sni) out.push({ labels: { certificate: 'sni', listener: l.name, servername: sni.servername }, file: sni.cert })
  }
  const upstream = config.upstream.tls?.cert
  if (upstream !== undefined && upstream !== null) out.push({ labels: { certificate: 'upstream_client' }, file: upstream })
  return out
}

/** The end of a PEM certificate's validity (its first certificate: the leaf of a chain), in seconds since the epoch; null if unreadable. */
export function notAfterSeconds(file: string): number | null {
  try {
    return Date.parse(new X509Certificate(readFileSync(file)).validTo) / 1000
  } catch {
    return null // the config loader refused unreadable files: this one went away since, and has no expiry to show
  }
}

export function registerCertificateMetrics(register: Registry, policy: { readonly config: MoatConfig; readonly generation: number }): void {
  let readAt = 0
  let expiries: Array<{ labels: CertificateLabels & { file: string }; notAfter: number }> = []
  new Gauge({
    name: 'moat_tls_certificate_not_after_timestamp_seconds',
    help: 'When a certificate Moat presents expires (seconds since the epoch): a TLS listener\'s (certificate="listener"), one of its SNI certificates (certificate="sni", servername), or the client certificate shown to the broker (certificate="upstream_client"). Read from the files at start and on each reload.',
    labelNames: ['certificate', 'listener', 'servername', 'file'],
    // With workers, the earliest any worker presents (one may still run the previous generation).
    aggregator: 'min',
    registers: [register],
    collect() {
      if (readAt !== policy.generation) {
        readAt = policy.generation
        expiries = presentedCertificates(policy.config).flatMap(({ labels, file }) => {
          const notAfter = notAfterSeconds(file)
          return notAfter === null ? [] : [{ labels: { ...labels, file }, notAfter }]
        })
      }
      this.reset()
      for (const { labels, notAfter } of expiries) this.set(labels, notAfter)
    },
  })
}
