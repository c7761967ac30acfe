/**
 * Moat with TLS, WebSocket and PROXY protocol listeners for the transport tests, its log lines
 * captured, and raw TLS / PROXY header helpers.
 */
import { Writable } from 'node:stream'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { ListenerConfig, ListenerTlsConfig, MoatConfig } from '../../src/config/types.js'
import { createLogger, type Logger } from '../../src/log/logger.js'
import { Moat } from '../../src/moat.js'
import { shortId } from './clients.js'
import { testConfig, type MoatOverrides } from './moat.js'

export interface LoggedMoat {
  moat: Moat
  /** Every log line, parsed. */
  logs: Array<Record<string, unknown>>
}

export function listenerTls(cert: string, key: string, extra: Partial<ListenerTlsConfig> = {}): ListenerTlsConfig {
  return { cert, key, passphrase: null, ca: null, clientCert: 'none', crl: [], minVersion: 'TLSv1.2', ciphers: null, ecdhCurve: null, sni: [], ...extra }
}

export function listener(name: string, protocol: ListenerConfig['protocol'], extra: Partial<ListenerConfig> = {}): ListenerConfig {
  return { name, protocol, host: '127.0.0.1', port: 0, tls: null, path: protocol === 'ws' || protocol === 'wss' ? '/mqtt' : '', origins: null, pingIntervalMs: protocol === 'ws' || protocol === 'wss' ? 30_000 : 0, proxyProtocol: false, trustedProxies: [], ...extra }
}

/** Captures Moat's log lines (its own logger: level names, redaction) parsed, and keeps Moat quiet. */
export function capturingLogger(lines: Array<Record<string, unknown>>): Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  return createLogger('debug', sink)
}

export async function startMoatWith(config: MoatConfig): Promise<LoggedMoat> {
  const logs: Array<Record<string, unknown>> = []
  const moat = new Moat(config, { logger: capturingLogger(logs) })
  await moat.start()
  return { moat, logs }
}

export function configWith(upstream: { host: string; port: number }, listeners: ListenerConfig[], overrides: MoatOverrides & { upstreamExtra?: Partial<MoatConfig['upstream']> } = {}): MoatConfig {
  const base = testConfig(upstream, overrides)
  return { ...base, listeners, upstream: { ...base.upstream, ...overrides.upstreamExtra } }
}

/** A PROXY protocol v1 header for a TCP4 client. */
export function proxyV1(src: string, srcPort: number, dst = '127.0.0.1', dstPort = 1883): Buffer {
  return Buffer.from(`PROXY TCP4 ${src} ${dst} ${srcPort} ${dstPort}\r\n`, 'latin1')
}

/** A PROXY protocol v2 header (PROXY command, TCP over IPv4), written by hand from the spec. */
export function proxyV2(src: string, srcPort: number, dst = '127.0.0.1', dstPort = 1883): Buffer {
  const header = Buffer.alloc(28)
  Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(header, 0)
  header[12] = 0x21
  header[13] = 0x11
  header.writeUInt16BE(12, 14)
  src.split('.').forEach((b, i) => { header[16 + i] = Number(b) })
  dst.split('.').forEach((b, i) => { header[20 + i] = Number(b) })
  header.writeUInt16BE(srcPort, 24)
  header.writeUInt16BE(dstPort, 26)
  return header
}

/**
 * Connects MQTT.js and reports how it ended: 'connected' (CONNACK 0), or the error / close that came
 * first. (connectAsync waits forever when a TLS server closes the socket without an MQTT answer.)
 */
export function tryConnect(url: string, options: IClientOptions = {}): Promise<{ outcome: 'connected' | 'error' | 'closed'; error?: Error; client: MqttClient }> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: shortId(), ...options })
  return new Promise((resolve) => {
    client.once('connect', () => resolve({ outcome: 'connected', client }))
    client.once('error', (error) => { client.end(true); resolve({ outcome: 'error', error, client }) })
    client.once('close', () => { client.end(true); resolve({ outcome: 'closed', client }) })
  })
}
