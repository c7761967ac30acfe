/**
 * What resumption must not change about who gets in (mutual TLS): a resumed session carries the
 * identity of its full handshake; a reload with a new CRL ends every older ticket, so a revoked
 * certificate does not get back in by resuming; a reload that changes no TLS file keeps them; a
 * certificate that expired since its handshake is refused when its session resumes. Certificates
 * and CRLs are made at test time; each refusal is shown from both sides (the client did not get
 * in, the broker saw nothing of it).
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import type { IClientOptions, MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { uid } from '../helpers/clients.js'
import { capturingLogger, tryConnect } from '../helpers/listeners.js'
import { dial } from '../helpers/resumption.js'

let certs: TestCerts
let broker: TestBroker
let ca: Buffer
beforeAll(async () => {
  certs = makeTestCerts(['device-1', 'device-2', 'device-3', 'device-4', 'device-5'])
  ca = readFileSync(certs.ca)
  broker = await startBroker('aedes')
})
afterAll(async () => {
  await broker.stop()
  certs.cleanup()
})

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A Moat on a config file in its own directory (the CRL there is replaced by the tests), with mutual TLS. */
async function start(name: string, clientCert: 'required' | 'optional', extra: string[] = []): Promise<{ moat: Moat; port: number; dir: string; file: string; logs: Array<Record<string, unknown>>; write: (more: string[], tls?: string) => void }> {
  const dir = join(certs.dir, name)
  mkdirSync(dir, { recursive: true })
  copyFileSync(certs.crl, join(dir, 'ca.crl'))
  const file = join(dir, 'moat.yaml')
  const write = (more: string[], tls = ''): void => writeFileSync(file, [
    `listeners: [{ name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: ${certs.server.cert}, key: ${certs.server.key}, ca: ${certs.ca}, clientCert: ${clientCert}, crl: ca.crl${tls} } }]`,
    `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
    'auth: { anonymous: true }',
    ...more,
  ].join('\n') + '\n')
  write(extra)
  const logs: Array<Record<string, unknown>> = []
  const moat = new Moat(loadConfig(file), { logger: capturingLogger(logs) })
  await moat.start()
  cleanups.push(() => moat.shutdown(0))
  return { moat, port: moat.address('secure').port, dir, file, logs, write }
}

function as(client: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(client.cert), key: readFileSync(client.key) }
}

/** MQTT.js over mqtts, offering `session`; the session it ends with, and whether it resumed. */
async function mqttConnect(port: number, options: Record<string, unknown>): Promise<{ outcome: string; client: MqttClient; resumed: boolean; session: () => Buffer | undefined }> {
  const result = await tryConnect(`mqtts://127.0.0.1:${port}`, { ca, ...options } as IClientOptions)
  const stream = result.client.stream as unknown as TLSSocket
  return { outcome: result.outcome, client: result.client, resumed: result.outcome === 'connected' && stream.isSessionReused(), session: () => stream.getSession() }
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  describe(`mutual TLS over ${version}`, () => {
    const pinned = { minVersion: version, maxVersion: version }

    for (const mode of ['required', 'optional'] as const) {
      it(`clientCert: ${mode}: a resumed session has the identity of its full handshake`, async () => {
        const { moat, port } = await start(`identity-${version}-${mode}`, mode)
        const first = await mqttConnect(port, { ...pinned, ...as(certs.clients['device-1']!), clientId: uid('id') })
        expect(first.outcome).toBe('connected')
        const identity = moat.sessionInfo()[0]!.certificate
        expect(identity).toMatchObject({ cn: 'device-1', subject: 'O=Moat development,CN=device-1' })
        await expect.poll(() => first.session() !== undefined).toBe(true)
        const session = first.session()!
        await first.client.endAsync()
        await expect.poll(() => moat.sessionCount).toBe(0)
        const second = await mqttConnect(port, { ...pinned, ...as(certs.clients['device-1']!), clientId: uid('id'), session })
        cleanups.push(() => second.client.endAsync())
        expect(second).toMatchObject({ outcome: 'connected', resumed: true })
        expect(moat.sessionInfo()[0]!.certificate).toEqual(identity)
        expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(1)
      })
    }

    it('a reload with a new CRL: the revoked client\'s ticket does not resume and it is refused; the others make a full handshake', async () => {
      const { moat, port, dir } = await start(`crl-${version}`, 'required')
      // Each version revokes its own client: the CA's CRL only grows.
      const [gone, kept] = version === 'TLSv1.2' ? ['device-2', 'device-3'] : ['device-4', 'device-5']
      const tickets: Record<string, Buffer> = {}
      for (const device of [gone, kept]) {
        const first = await dial(port, ca, { ...pinned, ...as(certs.clients[device]!) })
        expect((await dial(port, ca, { ...pinned, ...as(certs.clients[device]!), session: first.session! })).reused).toBe(true)
        tickets[device] = first.session!
      }
      copyFileSync(certs.revoke(gone), join(dir, 'ca.crl'))
      expect(moat.reload()).toBe(true)
      const resumedBefore = moat.stats.tls.handshakes('secure', 'resumed')
      const connectionsBefore = broker.connections()

      const clientId = uid('revoked')
      const revoked = await mqttConnect(port, { ...pinned, ...as(certs.clients[gone]!), session: tickets[gone], clientId })
      expect(revoked.outcome).not.toBe('connected')
      await expect.poll(() => moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
      expect(broker.connections()).toBe(connectionsBefore)
      expect(broker.received(clientId)).toEqual([])

      const other = await dial(port, ca, { ...pinned, ...as(certs.clients[kept]!), session: tickets[kept] })
      expect(other).toMatchObject({ reused: false, error: null })
      expect((await dial(port, ca, { ...pinned, ...as(certs.clients[kept]!), session: other.session! })).reused).toBe(true)
      expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(resumedBefore + 1) // only the new ticket
    })
  })
}

describe('reloads and expiry', () => {
  it('a reload that changes no TLS file keeps every ticket', async () => {
    const { moat, port, write } = await start('no-tls-change', 'required')
    const first = await dial(port, ca, as(certs.clients['device-1']!))
    write(['log: { level: debug }', 'limits: { maxPacketSize: 128KiB }'])
    expect(moat.reload()).toBe(true)
    expect(moat.config.limits.maxPacketSize).toBe(128 * 1024)
    expect((await dial(port, ca, { ...as(certs.clients['device-1']!), session: first.session! })).reused).toBe(true)
  })

  it('a reload can turn resumption off (no ticket resumes, not even a new one) and on again', async () => {
    const { moat, port, write } = await start('toggle', 'optional')
    const first = await dial(port, ca)
    write([], ', resumption: { enabled: false }')
    expect(moat.reload()).toBe(true)
    expect((await dial(port, ca, { session: first.session! })).reused).toBe(false)
    const during = await dial(port, ca)
    expect((await dial(port, ca, { session: during.session! })).reused).toBe(false)
    write([], ', resumption: { enabled: true, sessionCache: 0 }')
    expect(moat.reload()).toBe(true)
    const after = await dial(port, ca)
    expect((await dial(port, ca, { session: after.session! })).reused).toBe(true)
  })

  it('a client certificate that expired after its handshake is refused when its session resumes', async () => {
    const short = shortLivedClient(certs.dir, 'short-lived', 5)
    const { moat, port, logs } = await start('expiring', 'required')
    const sessions = []
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await dial(port, ca, { minVersion: version, maxVersion: version, ...as(short) })
      expect(first).toMatchObject({ reused: false, error: null })
      sessions.push({ version, session: first.session! })
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, short.notAfter - Date.now() + 1200)))
    for (const { version, session } of sessions) {
      const resumed = await dial(port, ca, { minVersion: version, maxVersion: version, ...as(short), session }, 500)
      expect(resumed.closedByServer || resumed.error !== null).toBe(true)
    }
    expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(2)
    expect(moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(2)
    expect(moat.sessionCount).toBe(0)
    expect(logs.filter((l) => l.event === 'connection_refused').map((l) => l.detail)).toEqual([
      'client certificate not accepted: CERT_HAS_EXPIRED (resumed session)',
      'client certificate not accepted: CERT_HAS_EXPIRED (resumed session)',
    ])
  }, 30_000)
})

/** A client certificate of the test CA valid from a minute ago for `seconds` more (`openssl ca` takes explicit dates). */
function shortLivedClient(dir: string, name: string, seconds: number): { cert: string; key: string; notAfter: number } {
  const run = (args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }) }
  const stamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')
  const notAfter = Math.ceil((Date.now() + seconds * 1000) / 1000) * 1000
  writeFileSync(join(dir, `${name}-index.txt`), '')
  writeFileSync(join(dir, `${name}-serial`), '2000\n')
  mkdirSync(join(dir, `${name}-issued`), { recursive: true })
  writeFileSync(join(dir, `${name}.cnf`), [
    '[ ca ]', 'default_ca = short', '', '[ short ]', 'dir = .', `database = $dir/${name}-index.txt`, `serial = $dir/${name}-serial`,
    `new_certs_dir = $dir/${name}-issued`, 'certificate = $dir/ca.crt', 'private_key = $dir/ca.key', 'default_md = sha256', 'policy = any', '',
    '[ any ]', 'commonName = supplied', '',
  ].join('\n'))
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:${name}\n`)
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=Moat development/CN=${name}`])
  run(['ca', '-batch', '-notext', '-config', `${name}.cnf`, '-in', `${name}.csr`, '-startdate', stamp(Date.now() - 60_000), '-enddate', stamp(notAfter), '-extfile', `${name}.ext`, '-out', `${name}.crt`])
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), notAfter }
}
