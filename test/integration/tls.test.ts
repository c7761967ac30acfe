/**
 * mqtts listeners: TLS 1.2+ termination, mutual TLS against a CA with a CRL, SNI, and the verified
 * certificate as the client's identity. Certificates are made at test time (moat certs logic, i.e.
 * openssl). Every refusal shows both sides: the client could not talk MQTT, and the broker never
 * saw a connection.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeDevCerts } from '../../src/certs.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { configWith, listener, listenerTls, startMoatWith, tryConnect, type LoggedMoat } from '../helpers/listeners.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['device-1', 'device-2', 'device-3'])
})
afterAll(() => certs.cleanup())

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function setup(kind: TestBroker['kind'], tlsExtra: Parameters<typeof listenerTls>[2] = {}): Promise<{ broker: TestBroker; m: LoggedMoat; port: number }> {
  const broker = await startBroker(kind)
  cleanups.push(() => broker.stop())
  const m = await startMoatWith(configWith(broker, [listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, tlsExtra) })]))
  cleanups.push(() => m.moat.shutdown(0))
  return { broker, m, port: m.moat.address('secure').port }
}

function clientTls(client?: { cert: string; key: string }): Record<string, unknown> {
  return {
    protocol: 'mqtts',
    ca: readFileSync(certs.ca),
    ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
  }
}

/** Runs `openssl s_client` against the port and returns its exit status and output. */
function sClient(port: number, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca, ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, output: stdout + stderr })
    })
    child.stdin!.end()
  })
}

/** A raw TLS handshake; resolves with the TLS socket once secure, or the error. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca), ...options }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** A real TLS ClientHello (Node's client), caught by a plain TCP server. */
function recordClientHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const catcher = net.createServer((s) => s.once('data', (chunk: Buffer) => { resolve(chunk); s.destroy() }))
    catcher.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (catcher.address() as net.AddressInfo).port, rejectUnauthorized: false })
      c.on('error', () => {})
      c.on('close', () => catcher.close())
    })
  })
}

for (const kind of brokerKinds()) {
  describe(`mqtts (${kind})`, () => {
    it('MQTT.js over mqtts passes messages both ways', async () => {
      const { broker, m, port } = await setup(kind)
      const topic = uid('tls/up')
      const down = uid('tls/down')
      // Broker side: a client connected to the broker directly.
      const direct = await connect(broker.port)
      cleanups.push(() => direct.endAsync())
      const directInbox = new Inbox(direct)
      await direct.subscribeAsync(topic, { qos: 1 })

      const client = await connect(port, clientTls())
      cleanups.push(() => client.endAsync())
      const inbox = new Inbox(client)
      await client.subscribeAsync(down, { qos: 1 })
      await client.publishAsync(topic, 'over tls', { qos: 1 })
      expect((await directInbox.waitForTopic(topic)).payload.toString()).toBe('over tls')
      await direct.publishAsync(down, 'back over tls', { qos: 1 })
      expect((await inbox.waitForTopic(down)).payload.toString()).toBe('back over tls')

      const [info] = m.moat.sessionInfo()
      // Both sides read into the lent buffer: the TLS socket its decrypted bytes, the broker's plain TCP connection its own.
      expect(info).toMatchObject({ transport: 'tls', certificate: null, clientReads: 'lent', brokerReads: 'lent' })
      expect(info!.tlsVersion).toMatch(/^TLSv1\.[23]$/)
    })
  })
}

describe('mqtts: protocol versions', () => {
  it('refuses TLS 1.1 (openssl s_client -tls1_1) and the broker sees nothing; TLS 1.2 and 1.3 pass', async () => {
    const { broker, m, port } = await setup('aedes')
    // OpenSSL 3 refuses TLS 1.1 itself at its default security level: lower it so the offer is really made.
    const old = await sClient(port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'])
    expect(old.code).not.toBe(0)
    expect(old.output).toMatch(/alert protocol version|unsupported protocol|wrong version number|no protocols available/i)
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'tls_handshake_failed')).toBe(1)
    // The log line names the client's address, which only the TLS socket knew.
    expect(m.logs.filter((l) => l.event === 'connection_refused').map((l) => [l.reason, l.remote])).toEqual([['tls_handshake_failed', expect.stringMatching(/^127\.0\.0\.1:\d+$/)]])

    const v12 = await sClient(port, ['-tls1_2'])
    expect(v12.output).toMatch(/New, TLSv1\.2,|Protocol\s*: TLSv1\.2/)
    const v13 = await sClient(port, ['-tls1_3'])
    expect(v13.output).toMatch(/New, TLSv1\.3,|Protocol\s*: TLSv1\.3/)
    expect(broker.connections()).toBe(0)
  })

  it('closes a TLS handshake that stalls (nothing, half a ClientHello, one trickled a byte at a time, a whole one then nothing) after connectTimeout; the broker sees nothing', async () => {
    const broker = await startBroker('aedes')
    cleanups.push(() => broker.stop())
    const m = await startMoatWith(configWith(broker, [listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key) })], { limits: { connectTimeoutMs: 400 } }))
    cleanups.push(() => m.moat.shutdown(0))
    const port = m.moat.address('secure').port
    const hello = await recordClientHello()
    // A handshake record header announcing 512 bytes, and only the first few of them.
    const halfHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
    // What each client sends, in pieces, one every 50 ms; whether Moat answers (its part of the handshake).
    const cases: Array<{ pieces: Buffer[]; answered: boolean }> = [
      { pieces: [], answered: false },
      { pieces: [halfHello], answered: false },
      { pieces: Array.from(hello, (byte) => Buffer.from([byte])), answered: false },
      { pieces: [hello], answered: true },
    ]
    for (const { pieces, answered } of cases) {
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => {})
      let received = 0
      socket.on('data', (chunk: Buffer) => { received += chunk.length })
      await new Promise<void>((resolve) => socket.once('connect', resolve))
      const started = Date.now()
      let sent = 0
      const drip = setInterval(() => { if (sent < pieces.length && !socket.destroyed) socket.write(pieces[sent++]!) }, 50)
      await new Promise<void>((resolve) => socket.once('close', () => resolve()))
      clearInterval(drip)
      // Closed by Moat, not by the client: not before connectTimeout, however busy the client kept
      // the socket, and with the ClientHello unanswered unless it was whole.
      const waited = Date.now() - started
      expect(waited).toBeGreaterThanOrEqual(350)
      expect(waited).toBeLessThan(2000)
      expect(received > 0).toBe(answered)
    }
    expect(m.moat.stats.refusedFor('secure', 'handshake_timeout')).toBe(cases.length)
    const refusals = m.logs.filter((l) => l.event === 'connection_refused')
    expect(refusals.map((l) => [l.reason, l.remote])).toEqual(Array(cases.length).fill(['handshake_timeout', expect.stringMatching(/^127\.0\.0\.1:\d+$/)]))
    expect(broker.connections()).toBe(0)
  })

  it('a handshake under way when the listener closes never becomes a session; the broker sees nothing', async () => {
    const { broker, m, port } = await setup('aedes')
    const raw = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve) => raw.once('connect', resolve))
    await m.moat.shutdown(0)
    // The handshake starts only now, on the connection accepted before the close.
    const socket = tls.connect({ socket: raw, ca: readFileSync(certs.ca), servername: 'localhost' })
    socket.on('error', () => {})
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    let secure = false
    socket.once('secureConnect', () => {
      secure = true
      socket.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]))
    })
    await new Promise<void>((resolve) => socket.once('close', () => resolve()))
    // The handshake itself went through (a certificate problem would prove nothing): no CONNACK came.
    expect(secure).toBe(true)
    expect(Buffer.concat(received).length).toBe(0)
    expect(m.moat.stats.sessionsOpen).toBe(0)
    expect(broker.connections()).toBe(0)
  })

  it('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
    const { m, port } = await setup('aedes', { minVersion: 'TLSv1.3' })
    await expect(handshake(port, { maxVersion: 'TLSv1.2' })).rejects.toThrow()
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'tls_handshake_failed')).toBe(1)
  })

  it('uses only the configured TLS 1.2 ciphers and ECDH curves', async () => {
    // (The server key is on P-256, which TLS 1.2 also needs in the groups for the ECDSA signature.)
    const { m, port } = await setup('aedes', { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', ecdhCurve: 'P-384:P-256' })
    const ok = await handshake(port, { maxVersion: 'TLSv1.2', ecdhCurve: 'X25519:P-384:P-256' })
    expect(ok.getCipher().standardName).toBe('TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256')
    expect(['secp384r1', 'prime256v1']).toContain((ok.getEphemeralKeyInfo() as { name: string }).name) // not X25519
    ok.destroy()
    await expect(handshake(port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).rejects.toThrow()
    await expect(handshake(port, { maxVersion: 'TLSv1.2', ecdhCurve: 'X25519' })).rejects.toThrow()
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'tls_handshake_failed')).toBe(2)
  })

  it('offers ALPN mqtt', async () => {
    const { port } = await setup('aedes')
    const socket = await handshake(port, { ALPNProtocols: ['mqtt'] })
    expect(socket.alpnProtocol).toBe('mqtt')
    socket.destroy()
    // A client that offers ALPN without mqtt gets no_application_protocol (RFC 7301).
    await expect(handshake(port, { ALPNProtocols: ['h2'] })).rejects.toThrow(/NO_APPLICATION_PROTOCOL|no application protocol/i)
  })
})

describe('mutual TLS (clientCert: required)', () => {
  async function required(extra: Parameters<typeof listenerTls>[2] = {}): Promise<{ broker: TestBroker; m: LoggedMoat; port: number }> {
    return setup('aedes', { ca: certs.ca, clientCert: 'required', ...extra })
  }

  it("accepts a client certificate from the CA; its CN, SANs and fingerprint become the session's identity", async () => {
    const { broker, m, port } = await required()
    const clientId = uid('mtls')
    const client = await connect(port, { ...clientTls(certs.clients['device-1']), clientId })
    cleanups.push(() => client.endAsync())
    await client.publishAsync('mtls/hello', 'x', { qos: 1 })
    await expect.poll(() => broker.received(clientId)).toContain('publish mtls/hello')
    const { X509Certificate } = await import('node:crypto')
    const x509 = new X509Certificate(readFileSync(certs.clients['device-1']!.cert))
    expect(m.moat.sessionInfo()[0]!.certificate).toEqual({
      subject: 'O=Moat development,CN=device-1',
      cn: 'device-1',
      sans: ['DNS:device-1'],
      fingerprint256: x509.fingerprint256,
    })
  })

  it('refuses a client with no certificate before any MQTT byte; the broker never sees a connection', async () => {
    const { broker, m, port } = await required()
    expect((await tryConnect(`mqtts://127.0.0.1:${port}`, clientTls())).outcome).not.toBe('connected')
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
    expect(m.moat.stats.connectionsAccepted.get('secure') ?? 0).toBe(0)
    expect(broker.connections()).toBe(0)
    expect(m.logs.find((l) => l.event === 'connection_refused')).toMatchObject({ reason: 'client_cert_refused', detail: 'no client certificate' })
  })

  it('refuses a certificate signed by another CA; the broker never sees a connection', async () => {
    const { broker, m, port } = await required()
    expect((await tryConnect(`mqtts://127.0.0.1:${port}`, clientTls(certs.stranger))).outcome).not.toBe('connected')
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
    expect(m.moat.sessionCount).toBe(0)
    expect(broker.connections()).toBe(0)
  })

  it('refuses a revoked certificate (CRL); another from the same CA still passes', async () => {
    certs.revoke('device-2')
    const { broker, m, port } = await required({ crl: [certs.crl] })
    expect((await tryConnect(`mqtts://127.0.0.1:${port}`, clientTls(certs.clients['device-2']))).outcome).not.toBe('connected')
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
    expect(m.logs.find((l) => l.event === 'connection_refused')!.detail).toMatch(/CERT_REVOKED/)
    expect(broker.connections()).toBe(0)
    const ok = await connect(port, clientTls(certs.clients['device-1']))
    await ok.endAsync()
    expect(broker.connections()).toBe(1)
  })
})

describe('mutual TLS (clientCert: optional)', () => {
  it('accepts a client without a certificate (no identity) and one with a valid certificate (identity)', async () => {
    const { m, port } = await setup('aedes', { ca: certs.ca, clientCert: 'optional' })
    const anonymous = await connect(port, clientTls())
    cleanups.push(() => anonymous.endAsync())
    expect(m.moat.sessionInfo()[0]!.certificate).toBeNull()
    const known = await connect(port, clientTls(certs.clients['device-3']))
    cleanups.push(() => known.endAsync())
    expect(m.moat.sessionInfo().map((s) => s.certificate?.cn ?? null).sort()).toEqual(['device-3', null])
  })

  it('still refuses a certificate that does not verify', async () => {
    const { broker, m, port } = await setup('aedes', { ca: certs.ca, clientCert: 'optional' })
    expect((await tryConnect(`mqtts://127.0.0.1:${port}`, clientTls(certs.stranger))).outcome).not.toBe('connected')
    await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(1)
    expect(broker.connections()).toBe(0)
  })
})

describe('SNI', () => {
  it('serves the certificate configured for the name the client asks for, the default otherwise', async () => {
    const other = makeDevCerts({ out: `${certs.dir}/../sni`, clients: [], hosts: ['other.example.test'], caName: 'SNI CA' })
    const { port } = await setup('aedes', { sni: [{ servername: 'other.example.test', cert: other.server.cert, key: other.server.key, passphrase: null }] })
    const named = await handshake(port, { servername: 'other.example.test', ca: readFileSync(other.ca) })
    expect(named.getPeerX509Certificate()!.subject).toMatch(/CN=other\.example\.test/)
    named.destroy()
    const plain = await handshake(port, { servername: 'localhost' })
    expect(plain.getPeerX509Certificate()!.subject).toMatch(/CN=localhost/)
    plain.destroy()
  })
})
