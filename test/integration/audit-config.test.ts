/**
 * `moat audit --config`: a deliberately weak config produces each finding exactly once; the
 * example configs in policies/ pass with nothing above "info"; the CLI prints text or JSON and
 * exits 4 when a finding reaches --fail-on.
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { auditConfig } from '../../src/audit/config-audit.js'
import { atLeast, type Finding } from '../../src/audit/finding.js'
import type { AuthRequest } from '../../src/auth/backend.js'
import { FileBackend } from '../../src/auth/file.js'
import { makeDevCerts } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'
import { runCli } from '../helpers/cli.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

const cli = runCli

/** A directory with a weak deployment: certificates about to expire, weak password hashes. */
function weakDeployment(extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-audit-'))
  makeDevCerts({ out: join(dir, 'certs'), days: 10 })
  const b64 = (b: Buffer): string => b.toString('base64')
  const salt = randomBytes(12)
  const sha512 = `$6$${b64(salt)}$${b64(createHash('sha512').update(Buffer.concat([Buffer.from('pw'), salt])).digest())}`
  const pbkdf2 = `$7$101$${b64(randomBytes(12))}$${b64(randomBytes(64))}`
  writeFileSync(join(dir, 'passwd'), `old-device:${sha512}\nmosquitto-device:${pbkdf2}\n`)
  writeFileSync(join(dir, 'moat.yaml'), [
    'listeners:',
    '  - { name: plain, protocol: mqtt, host: 0.0.0.0, port: 1883 }',
    '  - { name: tls, protocol: mqtts, host: 0.0.0.0, port: 8883, tls: { cert: certs/server.crt, key: certs/server.key, ciphers: "ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA" } }',
    'upstream: { host: 192.0.2.10, port: 1883 }',
    'admin: { host: 0.0.0.0, port: 9464 }',
    'auth:',
    '  anonymous: true',
    '  lockout: false',
    '  backends:',
    '    - { type: file, path: passwd }',
    '    - { type: http, url: "http://192.0.2.20/auth" }',
    ...extra,
  ].join('\n') + '\n')
  return join(dir, 'moat.yaml')
}

const weakAcl = [
  'acl:',
  '  - { allow: all, topic: "devices/{client_id}/#" }',
  '  - { allow: subscribe, topic: "devices/+/status" }',
  '  - { allow: subscribe, topic: "$SYS/#" }',
  '  - { allow: subscribe, topic: "#" }',
  '  - { allow: subscribe, topic: "$SYS/#", users: [ops] }',
  '  - { deny: all, topic: "#" }',
]

describe('moat audit --config', () => {
  it('finds each weakness of a weak config exactly once, with where, risk and fix', () => {
    const file = weakDeployment(weakAcl)
    const report = auditConfig(loadConfig(file), file)
    const ids = report.findings.map((f) => f.id).sort()
    expect(ids).toEqual([
      'acl-read-everything', 'acl-read-other-devices', 'acl-read-sys', 'admin-exposed', 'anonymous-access',
      'auth-over-plaintext', 'certificate-expiring', 'client-id-unbound', 'few-hash-iterations', 'no-client-certificates',
      'no-connection-limit', 'no-lockout', 'no-payload-cap', 'no-rate-limit', 'plaintext-listener',
      'upstream-plaintext', 'weak-password-hash', 'weak-tls-ciphers',
    ])
    const byId = new Map(report.findings.map((f) => [f.id, f]))
    expect(byId.get('plaintext-listener')).toMatchObject({ severity: 'high', where: 'listeners.0 (plain, mqtt 0.0.0.0:1883)' })
    expect(byId.get('acl-read-other-devices')).toMatchObject({ severity: 'high', where: 'acl.rules.1 (acl.rules.1)' })
    expect(byId.get('weak-password-hash')!.title).toMatch(/old-device/)
    expect(byId.get('certificate-expiring')).toMatchObject({ severity: 'high' })
    for (const f of report.findings) {
      expect(f.risk.length).toBeGreaterThan(20)
      expect(f.fix.length).toBeGreaterThan(10)
    }
  })

  it('says when there is no ACL at all, or when it allows everything', () => {
    const none = weakDeployment()
    expect(auditConfig(loadConfig(none), none).findings.filter((f) => f.id === 'no-acl')).toHaveLength(1)
    const open = weakDeployment(['acl:', '  - { allow: all, topic: "#" }'])
    expect(auditConfig(loadConfig(open), open).findings.filter((f) => f.id === 'allows-everything')).toEqual([
      expect.objectContaining({ severity: 'critical' }),
    ])
  })

  it('says when {client_id} rules rely on client ids nobody binds; a prefix binding leaves only users it refuses (info)', () => {
    const unbound = weakDeployment(weakAcl)
    expect(auditConfig(loadConfig(unbound), unbound).findings.filter((f) => f.id.startsWith('client-id'))).toEqual([
      expect.objectContaining({ id: 'client-id-unbound', severity: 'high', where: 'auth.clientId.bind (with acl.rules.0 (acl.rules.0))' }),
    ])
    for (const bind of ['username', 'username-prefix']) {
      const bound = weakDeployment([`  clientId: { bind: ${bind} }`, ...weakAcl])
      expect(auditConfig(loadConfig(bound), bound).findings.filter((f) => f.id.startsWith('client-id'))).toEqual([])
    }
    // Users whose names hold the separator are refused at CONNECT under the prefix binding: said, as info.
    const dashed = weakDeployment(['  clientId: { bind: username-prefix, separator: "-" }', ...weakAcl])
    expect(auditConfig(loadConfig(dashed), dashed).findings.filter((f) => f.id.startsWith('client-id'))).toEqual([
      expect.objectContaining({ id: 'client-id-separator-in-username', severity: 'info', title: expect.stringMatching(/2 user name\(s\).*old-device, mosquitto-device$/) }),
    ])
  })

  it('reports an unverified broker certificate, and a policy that admits nobody (info)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-audit-'))
    const file = join(dir, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: local, protocol: mqtt, host: 127.0.0.1, port: 1883 }]',
      'upstream: { host: 127.0.0.1, port: 8883, tls: { insecure: true } }',
      'auth: { anonymous: false }',
      'acl: [{ deny: all, topic: "#" }]',
      'limits: { maxPayload: 16KiB, messageRate: 100/s, connections: { perAddressRate: 20/s } }',
    ].join('\n') + '\n')
    const findings = auditConfig(loadConfig(file), file).findings
    expect(findings.map((f) => [f.id, f.severity])).toEqual([['refuses-everyone', 'info'], ['upstream-insecure', 'high']])
  })

  it('says when credentials no backend knows are left to the broker (medium), and that such a policy does not refuse everyone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-audit-'))
    const file = join(dir, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: local, protocol: mqtt, host: 127.0.0.1, port: 1883 }]',
      'upstream: { host: 127.0.0.1, port: 1884 }',
      'auth: { unknownCredentials: broker }',
      'acl: [{ deny: all, topic: "#" }]',
      'limits: { maxPayload: 16KiB, messageRate: 100/s, connections: { perAddressRate: 20/s } }',
    ].join('\n') + '\n')
    const findings = auditConfig(loadConfig(file), file).findings
    expect(findings.map((f) => [f.id, f.severity, f.where])).toEqual([['credentials-checked-by-broker', 'medium', 'auth.unknownCredentials']])
    expect(findings[0]!.risk).toMatch(/lockout/)
  })

  it("the fix for few PBKDF2 iterations works with this machine's mosquitto_passwd: the hash it rewrites passes, and still verifies", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-audit-'))
    const passwd = join(dir, 'passwd')
    execFileSync('mosquitto_passwd', ['-c', '-b', passwd, 'sensor', 'sensor-pw'])
    writeFileSync(join(dir, 'moat.yaml'), 'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 1883 }]\nupstream: { host: 127.0.0.1, port: 1884 }\nauth: { backends: [{ type: file, path: passwd }] }\n')
    const audit = (): Finding[] => auditConfig(loadConfig(join(dir, 'moat.yaml')), join(dir, 'moat.yaml')).findings.filter((f) => f.id === 'few-hash-iterations')
    const [finding] = audit()
    expect(finding?.title).toMatch(/sensor/)
    // The command the fix names, run as written (it prompts twice for the password).
    const command = /`(mosquitto_passwd [^`]+)`/.exec(finding!.fix)![1]!.replace('FILE', passwd).replace('USER', 'sensor').split(' ')
    expect(command.slice(0, 3)).toEqual(['mosquitto_passwd', '-I', '100000'])
    execFileSync(command[0]!, command.slice(1), { input: 'sensor-pw\nsensor-pw\n' })
    expect(readFileSync(passwd, 'utf8')).toMatch(/^sensor:\$7\$100000\$/)
    expect(audit()).toEqual([])
    const backend = FileBackend.load(passwd, join(dir, 'moat.yaml'), 'auth.backends.0.path')
    expect(await backend.authenticate({ username: 'sensor', password: Buffer.from('sensor-pw') } as AuthRequest)).toMatchObject({ outcome: 'allow' })
  })

  it('passes the example configs with nothing above info', () => {
    for (const name of ['example.yaml', 'minimal.yaml']) {
      const file = join(root, 'policies', name)
      expect(atLeast(auditConfig(loadConfig(file), file).findings, 'low')).toEqual([])
    }
  })

  it('prints text and JSON, and exits 4 when a finding reaches --fail-on', async () => {
    const file = weakDeployment(weakAcl)
    const text = await cli(['audit', '--config', file])
    expect(text.code).toBe(4)
    expect(text.stdout).toMatch(/\d+ finding\(s\) \(\d+ high, \d+ medium, \d+ low\)/)
    expect(text.stdout).toMatch(/\[HIGH\] Anonymous clients are admitted \(anonymous-access\)\n {2}where: auth\.anonymous\n {2}risk: {2}.+\n {2}fix: {3}/)
    const json = await cli(['audit', '--config', file, '--json', '--fail-on', 'critical'])
    expect(json.code).toBe(0) // nothing critical in it
    const parsed = JSON.parse(json.stdout) as { subject: string; findings: Array<{ id: string; severity: string }> }
    expect(parsed.subject).toBe(file)
    expect(parsed.findings[0]!.severity).toBe('high') // most severe first
    const clean = await cli(['audit', '--config', join(root, 'policies/example.yaml')])
    expect(clean).toMatchObject({ code: 0, stdout: `${join(root, 'policies/example.yaml')}: no findings\n` })
    const usage = await cli(['audit'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/needs exactly one of --config FILE or --target HOST:PORT/)
  })
})
