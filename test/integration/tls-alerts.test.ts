/**
 * What a client refused for its certificate sees, through Moat and from Mosquitto itself: a
 * Mosquitto TLS listener (require_certificate true, cafile, crlfile) and a Moat `mqtts` listener
 * (clientCert: required, ca, crl) in front of a plain Mosquitto, asked by two TLS implementations
 * (Node's tls and Python's ssl), over TLS 1.3 and 1.2. The clients only read after the handshake,
 * as a client waiting for the server does, so a server's alert is what they read.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { configWith, listener, listenerTls, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'
import { mosquittoPath, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

type Version = 'TLSv1.3' | 'TLSv1.2'
interface Client { readonly cert: string; readonly key: string }

/** An MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id). */
const CONNECT = Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00])

let certs: TestCerts
let reference: MosquittoProcess
let broker: TestBroker
let m: LoggedMoat
let moatPort: number

const haveMosquitto = mosquittoPath() !== null

beforeAll(async () => {
  if (!haveMosquitto) return
  certs = makeTestCerts(['device-1', 'device-2'])
  const crl = certs.revoke('device-2')
  reference = await startMosquitto({
    listenerLines: [`cafile ${certs.ca}`, `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`, 'require_certificate true', `crlfile ${crl}`, `user ${userInfo().username}`],
  })
  broker = await startBroker('mosquitto')
  // The helper's own port check is the broker's first connection: wait for it, so each test's count starts settled.
  await vi.waitFor(() => { if (broker.connections() === 0) throw new Error('no port check yet') })
  m = await startMoatWith(configWith(broker, [listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, { ca: certs.ca, clientCert: 'required', crl: [crl] }) })]))
  moatPort = m.moat.address('secure').port
}, 30_000)

afterAll(async () => {
  if (!haveMosquitto) return
  await m?.moat.shutdown(0)
  await broker?.stop()
  await reference?.stop()
  certs?.cleanup()
})

/**
 * Node's tls client: `alert:<OpenSSL reason>` for an alert from the server, `eof` for a close
 * without one, `connack` if MQTT got through.
 */
function nodeClient(port: number, version: Version, client?: Client): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1', port, ca: readFileSync(certs.ca), maxVersion: version, minVersion: version,
      ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
    })
    const done = (outcome: string): void => {
      socket.destroy()
      resolve(outcome)
    }
    socket.once('secureConnect', () => {
      // Past the handshake: a server that accepted the certificate answers MQTT.
      setTimeout(() => { if (!socket.destroyed) socket.write(CONNECT) }, 300)
    })
    socket.once('data', (d: Buffer) => done(d[0] === 0x20 ? 'connack' : `data:${d.toString('hex')}`))
    socket.once('error', (err: NodeJS.ErrnoException) => done(/ALERT/.test(err.code ?? '') ? `alert:${err.code!.replace(/^ERR_SSL_/, '')}` : (err.code ?? err.message)))
    socket.once('end', () => done('eof'))
  })
}

const PYTHON = `
import socket, ssl, sys
port, version, cert = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(sys.argv[4])
v = ssl.TLSVersion.TLSv1_3 if version == 'TLSv1.3' else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = v
ctx.maximum_version = v
if cert:
    ctx.load_cert_chain(cert, sys.argv[5])
try:
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='127.0.0.1')
    s.settimeout(0.3)
    try:
        d = s.recv(4)
    except socket.timeout:
        s.settimeout(5)
        s.send(bytes.fromhex(sys.argv[6]))
        d = s.recv(4)
    print('connack' if d[:1] == b'\\x20' else 'eof' if d == b'' else 'data:' + d.hex())
except ssl.SSLEOFError:
    print('eof')
except ssl.SSLZeroReturnError:
    print('close_notify')
except ssl.SSLError as e:
    print('alert:' + str(e.reason) if 'ALERT' in str(e.reason) else type(e).__name__ + ':' + str(e))
except OSError as e:
    print(type(e).__name__)
`

/** Python's ssl client, same outcomes as nodeClient. */
function pythonClient(port: number, version: Version, client?: Client): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', PYTHON, String(port), version, client?.cert ?? '', certs.ca, client?.key ?? '', CONNECT.toString('hex')], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`python3 failed: ${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

const clients = [['node', nodeClient], ['python', pythonClient]] as const
const versions: Version[] = ['TLSv1.3', 'TLSv1.2']

function refusals(): Array<Record<string, unknown>> {
  return m.logs.filter((l) => l.event === 'connection_refused')
}

describe.skipIf(!haveMosquitto)('client certificate refusals: the TLS alert matches Mosquitto (require_certificate true)', () => {
  for (const [impl, ask] of clients) {
    for (const version of versions) {
      it(`no certificate, ${impl} over ${version}: the same alert as Mosquitto's, counted and logged; the broker sees nothing`, async () => {
        const before = refusals().length
        const seen = broker.connections()
        const counted = m.moat.stats.refusedFor('secure', 'client_cert_refused')
        const expected = version === 'TLSv1.3' ? 'alert:TLSV13_ALERT_CERTIFICATE_REQUIRED' : 'alert:SSLV3_ALERT_HANDSHAKE_FAILURE'
        expect(await ask(reference.port, version)).toBe(expected)
        expect(await ask(moatPort, version)).toBe(expected)
        await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(counted + 1)
        expect(refusals().slice(before)).toEqual([expect.objectContaining({ reason: 'client_cert_refused', detail: 'no client certificate', level: 'warn' })])
        expect(broker.connections()).toBe(seen)
      })
    }
  }

  // OpenSSL alerts these from its verify callback, which Node's TLS keeps always accepting (Node
  // checks the chain after the handshake, then can only close): Moat refuses them, counts and logs
  // them, and the client reads an end of stream (over TLS 1.2 after a close_notify) instead.
  const bad = [
    ['an expired certificate', (): Client => certs.expired, 'SSLV3_ALERT_CERTIFICATE_EXPIRED', 'CERT_HAS_EXPIRED'],
    ['a revoked certificate', (): Client => certs.clients['device-2']!, 'SSLV3_ALERT_CERTIFICATE_REVOKED', 'CERT_REVOKED'],
    ['a certificate of an unknown CA', (): Client => certs.stranger, 'TLSV1_ALERT_UNKNOWN_CA', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ] as const
  for (const [what, cert, alert, code] of bad) {
    for (const [impl, ask] of clients) {
      for (const version of versions) {
        it(`${what}, ${impl} over ${version}: Mosquitto alerts ${alert}; Moat refuses it (counted, logged ${code}) and closes; the broker sees nothing`, async () => {
          const before = refusals().length
          const seen = broker.connections()
          const counted = m.moat.stats.refusedFor('secure', 'client_cert_refused')
          expect(await ask(reference.port, version, cert())).toBe(`alert:${alert}`)
          const outcome = await ask(moatPort, version, cert())
          expect(['eof', 'close_notify', 'ECONNRESET']).toContain(outcome)
          await expect.poll(() => m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(counted + 1)
          expect(refusals().slice(before)).toEqual([expect.objectContaining({ reason: 'client_cert_refused', detail: `client certificate not accepted: ${code}`, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/), level: 'warn' })])
          expect(broker.connections()).toBe(seen)
        })
      }
    }
  }

  it('a valid certificate still connects end to end, for both clients over both versions', async () => {
    const counted = m.moat.stats.refusedFor('secure', 'client_cert_refused')
    const seen = broker.connections()
    for (const [, ask] of clients) {
      for (const version of versions) {
        expect(await ask(reference.port, version, certs.clients['device-1'])).toBe('connack')
        expect(await ask(moatPort, version, certs.clients['device-1'])).toBe('connack')
      }
    }
    expect(m.moat.stats.refusedFor('secure', 'client_cert_refused')).toBe(counted)
    await expect.poll(() => broker.connections()).toBe(seen + 4)
  })
})
