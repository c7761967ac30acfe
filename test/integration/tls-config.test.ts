/**
 * TLS settings from a config file: relative paths resolve against the file's directory, bad
 * certificate files are reported at load (file, key, reason) by `moat check` too, and a reload
 * (SIGHUP) picks up new certificates and CRLs for new connections while open sessions go on.
 */
import { execFile, execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeDevCerts, revokeDevCert as revokeDevCertIn } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'
import { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { Inbox, uid } from '../helpers/clients.js'
import { capturingLogger, tryConnect } from '../helpers/listeners.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['device-1', 'device-2'])
})
afterAll(() => certs.cleanup())

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function writeConfig(name: string, lines: string[]): string {
  const file = join(certs.dir, name)
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function issues(file: string): Array<{ path: string; message: string; line?: number }> {
  try {
    loadConfig(file)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return [...(err as ConfigError).issues]
  }
  throw new Error('the config loaded')
}

describe('TLS config at load', () => {
  it('resolves relative paths against the config file and loads every TLS key', () => {
    const file = writeConfig('ok.yaml', [
      'listeners:',
      '  - { name: secure, protocol: mqtts, port: 0, tls: { cert: server.crt, key: server.key, ca: ca.crt, clientCert: optional, crl: ca.crl, minVersion: TLSv1.3, ciphers: "ECDHE+AESGCM", ecdhCurve: "X25519:P-256" } }',
      '  - { name: web, protocol: wss, port: 0, path: /ws, origins: [https://app.example.com], tls: { cert: server.crt, key: server.key } }',
      '  - { name: lb, protocol: ws, port: 0, proxyProtocol: true, trustedProxies: [10.0.0.0/8] }',
      'upstream: { host: 127.0.0.1, port: 1883, proxyProtocol: v2, tls: { ca: ca.crt, cert: device-1.crt, key: device-1.key, servername: broker.local } }',
    ])
    const config = loadConfig(file)
    expect(config.listeners[0]!.tls).toEqual({
      cert: certs.server.cert, key: certs.server.key, passphrase: null, ca: certs.ca, clientCert: 'optional', crl: [certs.crl],
      minVersion: 'TLSv1.3', ciphers: 'ECDHE+AESGCM', ecdhCurve: 'X25519:P-256', sni: [],
    })
    expect(config.listeners[1]).toMatchObject({ protocol: 'wss', path: '/ws', origins: ['https://app.example.com'], proxyProtocol: false })
    expect(config.listeners[2]).toMatchObject({ protocol: 'ws', path: '/mqtt', tls: null, proxyProtocol: true, trustedProxies: ['10.0.0.0/8'] })
    expect(config.upstream).toMatchObject({ proxyProtocol: 'v2', tls: { ca: certs.ca, cert: certs.clients['device-1']!.cert, servername: 'broker.local', insecure: false } })
  })

  it.each([
    ['a missing certificate file', '{ cert: nope.crt, key: server.key }', 'listeners.0.tls.cert', /nope\.crt: no such file/],
    ['a key that is not a key', '{ cert: server.crt, key: ca.crt }', 'listeners.0.tls.key', /not a PEM private key/],
    ['a key that does not match the certificate', '{ cert: server.crt, key: device-1.key }', 'listeners.0.tls.key', /does not match the certificate/],
    ['a CA that is not a certificate', '{ cert: server.crt, key: server.key, ca: server.key, clientCert: required }', 'listeners.0.tls.ca', /not a PEM certificate/],
    ['a CRL that is not a CRL', '{ cert: server.crt, key: server.key, ca: ca.crt, clientCert: required, crl: ca.crt }', 'listeners.0.tls.crl', /not a PEM certificate revocation list/],
    ['TLS 1.1', '{ cert: server.crt, key: server.key, minVersion: TLSv1.1 }', 'listeners.0.tls.minVersion', /TLSv1\.1 is refused/],
    ['clientCert without a CA', '{ cert: server.crt, key: server.key, clientCert: required }', 'listeners.0.tls.ca', /needs ca/],
    ['an unknown cipher list', '{ cert: server.crt, key: server.key, ciphers: NOT-A-CIPHER }', 'listeners.0.tls.ciphers', /no usable cipher/],
    ['an unknown TLS key', '{ cert: server.crt, key: server.key, verify: true }', 'listeners.0.tls.verify', /unknown key 'verify'/],
  ])('refuses %s, naming the file, key and reason', (_name, tlsYaml, path, reason) => {
    const file = writeConfig('bad.yaml', [
      'listeners:',
      `  - { name: secure, protocol: mqtts, port: 8883, tls: ${tlsYaml} }`,
      'upstream: { host: 127.0.0.1, port: 1883 }',
    ])
    const found = issues(file)
    expect(found).toHaveLength(1)
    expect(found[0]).toMatchObject({ path, line: 2 })
    expect(found[0]!.message).toMatch(reason)
  })

  it('reads an encrypted key with its passphrase, and says when the passphrase is missing or wrong', () => {
    execFileSync('openssl', ['pkey', '-in', certs.server.key, '-aes256', '-passout', 'pass:s3cret', '-out', join(certs.dir, 'enc.key')])
    const withPass = (pass: string | null): string => writeConfig('enc.yaml', [
      'listeners:',
      `  - { name: secure, protocol: mqtts, port: 8883, tls: { cert: server.crt, key: enc.key${pass === null ? '' : `, passphrase: ${pass}`} } }`,
      'upstream: { host: 127.0.0.1, port: 1883 }',
    ])
    expect(loadConfig(withPass('s3cret')).listeners[0]!.tls!.passphrase).toBe('s3cret')
    expect(issues(withPass(null))[0]).toMatchObject({ path: 'listeners.0.tls.key', message: expect.stringMatching(/encrypted: set passphrase/) })
    const wrong = issues(withPass('nope'))[0]!
    expect(wrong).toMatchObject({ path: 'listeners.0.tls.key', message: expect.stringMatching(/wrong passphrase/) })
    expect(wrong.message).not.toContain('nope')
  })

  it.each([
    ['mqtts without tls', '{ name: a, protocol: mqtts, port: 1 }', 'listeners.0.tls', /needs tls/],
    ['tls on a plain listener', '{ name: a, protocol: mqtt, port: 1, tls: { cert: server.crt, key: server.key } }', 'listeners.0.tls', /has no TLS/],
    ['a path on an mqtt listener', '{ name: a, protocol: mqtt, port: 1, path: /mqtt }', 'listeners.0.path', /only ws and wss/],
    ['proxyProtocol without trustedProxies', '{ name: a, protocol: mqtt, port: 1, proxyProtocol: true }', 'listeners.0.trustedProxies', /needs trustedProxies/],
    ['a bad CIDR', '{ name: a, protocol: mqtt, port: 1, proxyProtocol: true, trustedProxies: [10.0.0.0/40] }', 'listeners.0.trustedProxies.0', /prefix/],
    ['an unknown protocol', '{ name: a, protocol: http, port: 1 }', 'listeners.0.protocol', /unknown protocol 'http'/],
  ])('refuses %s', (_name, listenerYaml, path, reason) => {
    const file = writeConfig('bad-listener.yaml', ['listeners:', `  - ${listenerYaml}`, 'upstream: { host: 127.0.0.1, port: 1883 }'])
    const found = issues(file)
    expect(found[0]).toMatchObject({ path })
    expect(found[0]!.message).toMatch(reason)
  })

  it('moat check validates a config with TLS, WebSocket and PROXY listeners, and reports a bad key file', async () => {
    const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
    const run = (file: string): Promise<{ code: number; out: string }> => new Promise((resolve) => {
      execFile(process.execPath, [cli, 'check', '--config', file], (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), out: stdout + stderr }))
    })
    const good = writeConfig('check-ok.yaml', [
      'listeners:',
      '  - { name: secure, protocol: mqtts, port: 8883, tls: { cert: server.crt, key: server.key } }',
      '  - { name: web, protocol: wss, port: 8884, tls: { cert: server.crt, key: server.key } }',
      '  - { name: lb, protocol: mqtt, port: 1883, proxyProtocol: true, trustedProxies: [10.0.0.0/8] }',
      'upstream: { host: 127.0.0.1, port: 1884 }',
    ])
    expect(await run(good)).toMatchObject({ code: 0, out: expect.stringMatching(/valid \(3 listener\(s\)/) })
    const bad = writeConfig('check-bad.yaml', ['listeners:', '  - { name: secure, protocol: mqtts, port: 8883, tls: { cert: server.crt, key: missing.key } }', 'upstream: { host: 127.0.0.1, port: 1884 }'])
    const result = await run(bad)
    expect(result.code).toBe(1)
    expect(result.out).toContain(`${bad}:2:`)
    expect(result.out).toMatch(/listeners\.0\.tls\.key: cannot read .*missing\.key: no such file/)
  })
})

describe('moat certs', () => {
  it('makes a CA, a server and client certificates that a config can use at once', async () => {
    const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
    const out = join(certs.dir, 'cli-certs')
    const result = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [cli, 'certs', '--out', out, '--client', 'sensor-7', '--host', 'mqtt.example.test'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), out: stdout + stderr }))
    })
    expect(result.code).toBe(0)
    expect(result.out).toMatch(/not for production/)
    const server = new X509Certificate(readFileSync(join(out, 'server.crt')))
    expect(server.subjectAltName).toBe('DNS:mqtt.example.test')
    expect(new X509Certificate(readFileSync(join(out, 'sensor-7.crt'))).subject).toMatch(/CN=sensor-7/)
    const file = join(out, 'moat.yaml')
    writeFileSync(file, 'listeners: [{ name: s, protocol: mqtts, port: 8883, tls: { cert: server.crt, key: server.key, ca: ca.crt, clientCert: required, crl: ca.crl } }]\nupstream: { host: 127.0.0.1, port: 1884 }\n')
    expect(loadConfig(file).listeners[0]!.tls!.crl).toEqual([join(out, 'ca.crl')])
  })

  it('says what is missing without --out', async () => {
    const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url))
    const result = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [cli, 'certs'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), out: stdout + stderr }))
    })
    expect(result.code).toBe(2)
    expect(result.out).toMatch(/'moat certs' needs --out DIR/)
  })
})

describe('reload of certificates', () => {
  let broker: TestBroker
  beforeAll(async () => {
    broker = await startBroker('aedes')
  })
  afterAll(() => broker.stop())

  it('picks up a new server certificate and a new CRL for new connections; open sessions go on', async () => {
    const live = join(certs.dir, 'live')
    mkdirSync(live, { recursive: true })
    for (const f of ['server.crt', 'server.key', 'ca.crt', 'ca.crl']) copyFileSync(join(certs.dir, f), join(live, f))
    const file = join(live, 'moat.yaml')
    writeFileSync(file, [
      'listeners:',
      '  - { name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: server.crt, key: server.key, ca: ca.crt, clientCert: required, crl: ca.crl } }',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
    ].join('\n'))
    const logs: Array<Record<string, unknown>> = []
    const moat = new Moat(loadConfig(file), { logger: capturingLogger(logs) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address('secure').port
    const url = `mqtts://127.0.0.1:${port}`
    const as = (name: string): Record<string, unknown> => ({ ca: readFileSync(certs.ca), cert: readFileSync(certs.clients[name]!.cert), key: readFileSync(certs.clients[name]!.key) })
    const serverFingerprint = (): Promise<string> => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, cert: readFileSync(certs.clients['device-1']!.cert), key: readFileSync(certs.clients['device-1']!.key) }, () => {
        resolve(s.getPeerX509Certificate()!.fingerprint256)
        s.destroy()
      })
      s.once('error', reject)
    })

    const open = await tryConnect(url, as('device-2'))
    cleanups.push(() => open.client.endAsync())
    expect(open.outcome).toBe('connected')
    const topic = uid('reload/tls')
    const inbox = new Inbox(open.client)
    await open.client.subscribeAsync(topic, { qos: 1 })
    const before = await serverFingerprint()

    // Revoke device-2 and renew the server certificate, then reload.
    copyFileSync(certs.revoke('device-2'), join(live, 'ca.crl'))
    const renewed = makeDevCerts({ out: join(certs.dir, 'renewed'), clients: [], caName: 'Renewed CA' })
    copyFileSync(renewed.server.cert, join(live, 'server.crt'))
    copyFileSync(renewed.server.key, join(live, 'server.key'))
    expect(moat.reload()).toBe(true)
    expect(logs.find((l) => l.event === 'tls_reload')).toMatchObject({ outcome: 'success' })

    expect(await serverFingerprint()).not.toBe(before)
    const refused = await tryConnect(url, { ...as('device-2'), rejectUnauthorized: false })
    expect(refused.outcome).not.toBe('connected')
    await expect.poll(() => moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)

    // The session opened before the reload still works, both ways.
    await open.client.publishAsync(topic, 'still here', { qos: 1 })
    expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('still here')
  })

  it('a TLS session ticket issued before the reload does not resume past a new CRL', async () => {
    const live = join(certs.dir, 'tickets')
    mkdirSync(live, { recursive: true })
    for (const f of ['server.crt', 'server.key', 'ca.crt']) copyFileSync(join(certs.dir, f), join(live, f))
    const fresh = makeDevCerts({ out: join(certs.dir, 'tickets-ca'), clients: ['device-9'], caName: 'Ticket CA' })
    copyFileSync(fresh.ca, join(live, 'ca.crt'))
    copyFileSync(fresh.crl, join(live, 'ca.crl'))
    const file = join(live, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: server.crt, key: server.key, ca: ca.crt, clientCert: required, crl: ca.crl } }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
    ].join('\n'))
    const moat = new Moat(loadConfig(file), { logger: capturingLogger([]) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address('secure').port
    const dial = (session?: Buffer): Promise<{ ticket: Buffer | null; reused: boolean; closedByServer: boolean }> => new Promise((resolve) => {
      let ticket: Buffer | null = null
      let reused = false
      const s = tls.connect({
        host: '127.0.0.1', port, ca: readFileSync(certs.ca), servername: 'localhost',
        cert: readFileSync(fresh.clients['device-9']!.cert), key: readFileSync(fresh.clients['device-9']!.key), ...(session ? { session } : {}),
      })
      s.on('session', (t: Buffer) => { ticket = t; s.end() })
      s.on('secureConnect', () => { reused = s.isSessionReused(); if (reused) setImmediate(() => s.end()) })
      s.on('error', () => {})
      s.on('close', () => resolve({ ticket, reused, closedByServer: ticket === null }))
    })
    const first = await dial()
    expect(first.ticket).not.toBeNull()
    expect((await dial(first.ticket!)).reused).toBe(true) // before the reload, the ticket resumes
    copyFileSync(revokeDevCertIn(fresh.dir, fresh.clients['device-9']!.cert), join(live, 'ca.crl'))
    expect(moat.reload()).toBe(true)
    const second = await dial(first.ticket!)
    expect(second.reused).toBe(false)
    await expect.poll(() => moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
  })

  it('an sni entry added by a reload serves its name from then on, one removed stops; open sessions go on', async () => {
    const live = join(certs.dir, 'sni-reload')
    mkdirSync(live, { recursive: true })
    for (const f of ['server.crt', 'server.key']) copyFileSync(join(certs.dir, f), join(live, f))
    const other = makeDevCerts({ out: join(certs.dir, 'sni-reload-other'), clients: [], hosts: ['other.example.test'], caName: 'SNI Reload CA' })
    copyFileSync(other.server.cert, join(live, 'other.crt'))
    copyFileSync(other.server.key, join(live, 'other.key'))
    const file = join(live, 'moat.yaml')
    const yaml = (sni: string): string => [
      `listeners: [{ name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: server.crt, key: server.key${sni} } }]`,
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
    ].join('\n')
    writeFileSync(file, yaml(''))
    const logs: Array<Record<string, unknown>> = []
    const moat = new Moat(loadConfig(file), { logger: capturingLogger(logs) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address('secure').port
    const servedTo = (servername: string): Promise<string> => new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['mqtt'] }, () => {
        resolve(s.getPeerX509Certificate()!.subject)
        s.destroy()
      })
      s.once('error', reject)
    })
    const open = await tryConnect(`mqtts://127.0.0.1:${port}`, { ca: readFileSync(certs.ca) })
    cleanups.push(() => open.client.endAsync())
    expect(open.outcome).toBe('connected')
    const topic = uid('reload/sni')
    const inbox = new Inbox(open.client)
    await open.client.subscribeAsync(topic, { qos: 1 })

    expect(await servedTo('other.example.test')).toMatch(/CN=localhost/)
    writeFileSync(file, yaml(', sni: [{ servername: other.example.test, cert: other.crt, key: other.key }]'))
    expect(moat.reload()).toBe(true)
    expect(await servedTo('other.example.test')).toMatch(/CN=other\.example\.test/)
    expect(await servedTo('localhost')).toMatch(/CN=localhost/)
    writeFileSync(file, yaml(''))
    expect(moat.reload()).toBe(true)
    expect(await servedTo('other.example.test')).toMatch(/CN=localhost/)
    expect(logs.filter((l) => l.event === 'tls_reload').map((l) => l.outcome)).toEqual(['success', 'success'])

    // The session opened before both reloads still works, both ways.
    await open.client.publishAsync(topic, 'still here', { qos: 1 })
    expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('still here')
  })

  it('a connectTimeout changed by a reload bounds the TLS handshakes after it', async () => {
    const live = join(certs.dir, 'timeout-reload')
    mkdirSync(live, { recursive: true })
    for (const f of ['server.crt', 'server.key']) copyFileSync(join(certs.dir, f), join(live, f))
    const file = join(live, 'moat.yaml')
    const yaml = (timeout: string): string => [
      'listeners: [{ name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: server.crt, key: server.key } }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
      `limits: { connectTimeout: ${timeout} }`,
    ].join('\n')
    writeFileSync(file, yaml('30s'))
    const moat = new Moat(loadConfig(file), { logger: capturingLogger([]) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address('secure').port
    const dial = (session?: Buffer): Promise<{ ticket: Buffer | null; reused: boolean }> => new Promise((resolve) => {
      let ticket: Buffer | null = null
      let reused = false
      const s = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca), servername: 'localhost', ...(session ? { session } : {}) })
      s.on('session', (t: Buffer) => { ticket = t; s.end() })
      s.on('secureConnect', () => { reused = s.isSessionReused() })
      s.on('error', () => {})
      s.on('close', () => resolve({ ticket, reused }))
    })
    const first = await dial()
    expect(first.ticket).not.toBeNull()
    writeFileSync(file, yaml('300ms'))
    expect(moat.reload()).toBe(true)
    // The same files: a ticket issued before the reload still resumes.
    expect((await dial(first.ticket!)).reused).toBe(true)
    // A client that opens TCP and never starts its handshake.
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    const started = Date.now()
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(250)
    expect(waited).toBeLessThan(10_000)
    expect(moat.stats.refusedFor('secure', 'handshake_timeout')).toBe(1)
  })

  it('keeps the running certificates when the new files are broken', async () => {
    const live = join(certs.dir, 'broken')
    mkdirSync(live, { recursive: true })
    for (const f of ['server.crt', 'server.key']) copyFileSync(join(certs.dir, f), join(live, f))
    const file = join(live, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: server.crt, key: server.key } }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
    ].join('\n'))
    const logs: Array<Record<string, unknown>> = []
    const moat = new Moat(loadConfig(file), { logger: capturingLogger(logs) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    writeFileSync(join(live, 'server.key'), 'not a key')
    expect(moat.reload()).toBe(false)
    expect(moat.stats.configReloadFailures).toBe(1)
    const ok = await tryConnect(`mqtts://127.0.0.1:${moat.address('secure').port}`, { ca: readFileSync(certs.ca) })
    expect(ok.outcome).toBe('connected')
    await ok.client.endAsync()
  })
})
