/**
 * moat_tls_certificate_not_after_timestamp_seconds: one series per certificate Moat presents (a TLS
 * listener's, its SNI certificates, the client certificate shown to the broker), dated as openssl
 * reads the file, and read again only when the policy changes generation (a reload).
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { makeDevCerts } from '../../../src/certs.js'
import { loadConfig, parseConfig } from '../../../src/config/load.js'
import { registerCertificateMetrics } from '../../../src/metrics/certificates.js'
import { PolicyStore } from '../../../src/policy/store.js'

const NAME = 'moat_tls_certificate_not_after_timestamp_seconds'

/** notAfter as the openssl command prints it, in seconds since the epoch. */
function opensslNotAfter(file: string): number {
  const out = execFileSync('openssl', ['x509', '-noout', '-enddate', '-in', file], { encoding: 'utf8' })
  return Date.parse(out.trim().replace(/^notAfter=/, '')) / 1000
}

async function samples(register: Registry): Promise<Array<{ labels: Record<string, unknown>; value: number }>> {
  const metric = (await register.getMetricsAsJSON()).find((m) => m.name === NAME)!
  return metric.values.map((v) => ({ labels: v.labels, value: v.value }))
}

describe('the certificate expiry gauge', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-cert-metrics-'))
  const short = makeDevCerts({ out: join(dir, 'short'), days: 20, clients: ['gateway'] })
  const long = makeDevCerts({ out: join(dir, 'long'), days: 400, hosts: ['iot.example.com'] })
  const file = join(dir, 'moat.yaml')
  writeFileSync(file, [
    'listeners:',
    '  - { name: plain, protocol: mqtt, port: 1883 }',
    `  - name: edge`,
    '    protocol: mqtts',
    '    port: 8883',
    `    tls: { cert: ${short.server.cert}, key: ${short.server.key}, sni: [{ servername: iot.example.com, cert: ${long.server.cert}, key: ${long.server.key} }] }`,
    `upstream: { host: 127.0.0.1, port: 8884, tls: { ca: ${short.ca}, cert: ${short.clients.gateway!.cert}, key: ${short.clients.gateway!.key} } }`,
  ].join('\n') + '\n')

  it('has one series per presented certificate, dated as openssl reads it', async () => {
    const register = new Registry()
    registerCertificateMetrics(register, new PolicyStore(loadConfig(file)))
    expect(await samples(register)).toEqual([
      { labels: { certificate: 'listener', listener: 'edge', file: short.server.cert }, value: opensslNotAfter(short.server.cert) },
      { labels: { certificate: 'sni', listener: 'edge', servername: 'iot.example.com', file: long.server.cert }, value: opensslNotAfter(long.server.cert) },
      { labels: { certificate: 'upstream_client', file: short.clients.gateway!.cert }, value: opensslNotAfter(short.clients.gateway!.cert) },
    ])
    const days = (await samples(register)).map((s) => Math.round((s.value - Date.now() / 1000) / 86400))
    expect(days).toEqual([20, 400, 20])
  })

  it('reads the files again on a new policy generation, not on every scrape', async () => {
    const copy = join(dir, 'renewed')
    const renewable = makeDevCerts({ out: copy, days: 10 })
    const config = (): ReturnType<typeof parseConfig> => parseConfig([
      'listeners:',
      `  - { name: edge, protocol: mqtts, port: 8883, tls: { cert: ${renewable.server.cert}, key: ${renewable.server.key} } }`,
      'upstream: { host: 127.0.0.1, port: 1883 }',
    ].join('\n'), join(dir, 'renewed.yaml'))
    const policy = new PolicyStore(config())
    const register = new Registry()
    registerCertificateMetrics(register, policy)
    const before = (await samples(register))[0]!.value
    expect(before).toBe(opensslNotAfter(renewable.server.cert))
    // The certificate is renewed in place: a later one with the same key.
    execFileSync('openssl', ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '0x1234', '-days', '90', '-sha256', '-extfile', 'server.ext', '-out', 'renewed.crt'], { cwd: copy, stdio: 'ignore' })
    copyFileSync(join(copy, 'renewed.crt'), renewable.server.cert)
    expect((await samples(register))[0]!.value).toBe(before)
    policy.swap(config())
    const after = (await samples(register))[0]!.value
    expect(after).toBe(opensslNotAfter(renewable.server.cert))
    expect(Math.round((after - before) / 86400)).toBe(80)
  })

  it('has no series without TLS', async () => {
    const register = new Registry()
    registerCertificateMetrics(register, new PolicyStore(parseConfig('listeners: [{ name: plain, protocol: mqtt, port: 1883 }]\nupstream: { host: 127.0.0.1, port: 1884 }\n', 'moat.yaml')))
    expect(await samples(register)).toEqual([])
  })
})
