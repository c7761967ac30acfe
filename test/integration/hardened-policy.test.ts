/**
 * policies/hardened.yaml, docs/hardening.md as a file, run for real: certificates made at
 * test time next to it, a password file, a real broker behind it, and real clients. It must load,
 * pass `moat audit` without findings, and hold what it promises: devices only reach their own
 * subtree, dashboards only read, nobody gets in without a certificate or a password. Every refusal
 * shows both sides: the client's reason code and a broker that saw nothing.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { auditConfig } from '../../src/audit/config-audit.js'
import { hashPassword } from '../../src/auth/password-hash.js'
import { makeDevCerts, type DevCerts } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { startMoatWith, tryConnect, type LoggedMoat } from '../helpers/listeners.js'

/** The PUBACK reason code (0: success, or 3.1.1, which has no negative acknowledgement). */
async function pubackCode(sent: Promise<unknown>): Promise<number> {
  try {
    const packet = (await sent) as { reasonCode?: number } | undefined
    return packet?.reasonCode ?? 0
  } catch (err) {
    return (err as { code?: number }).code ?? -1
  }
}

/** The SUBACK code of the one filter asked for. */
async function subackCode(sent: Promise<Array<{ qos: number }>>): Promise<number> {
  try {
    return (await sent)[0]!.qos
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet
    return packet?.granted?.[0] ?? -1
  }
}

const root = fileURLToPath(new URL('../..', import.meta.url))
const kind = brokerKinds().includes('mosquitto') ? 'mosquitto' : 'aedes'
const version = kind === 'mosquitto' ? 5 : 4

describe(`policies/hardened.yaml (${kind})`, () => {
  let dir: string
  let certs: DevCerts
  let broker: TestBroker
  let m: LoggedMoat
  let port: number
  let witness: MqttClient
  let seen: Inbox

  const device = (name: string): Record<string, unknown> => ({
    protocol: 'mqtts', protocolVersion: version, ca: readFileSync(certs.ca), clientId: `${name}:${uid('c')}`, reconnectPeriod: 0,
    cert: readFileSync(certs.clients[name]!.cert), key: readFileSync(certs.clients[name]!.key),
  })
  const person = (username: string, password: string): Record<string, unknown> => ({
    protocol: 'mqtts', protocolVersion: version, ca: readFileSync(certs.ca), clientId: `${username}:${uid('c')}`, reconnectPeriod: 0, username, password,
  })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-hardened-'))
    certs = makeDevCerts({ out: join(dir, 'certs'), clients: ['device-1', 'device-2'] })
    writeFileSync(join(dir, 'passwd'), `grafana:${await hashPassword(Buffer.from('grafana-secret'), { N: 1024, r: 8, p: 1 })}\n`)
    broker = await startBroker(kind)
    // The policy as shipped, with test ports: every listener on a free port, the broker's address.
    const policy = parse(readFileSync(join(root, 'policies/hardened.yaml'), 'utf8')) as Record<string, any>
    for (const l of policy.listeners) l.port = 0
    policy.upstream = { ...policy.upstream, host: broker.host, port: broker.port }
    policy.admin = { ...policy.admin, port: 0 }
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'hardened.yaml'), stringify(policy))
    copyFileSync(join(root, 'policies/hardened.yaml'), join(dir, 'as-shipped.yaml'))
    m = await startMoatWith(loadConfig(join(dir, 'hardened.yaml')))
    port = m.moat.address('devices').port
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('#')
  })
  afterAll(async () => {
    await witness?.endAsync()
    await m?.moat.shutdown(0)
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('loads as shipped and passes moat audit without findings', () => {
    const file = join(dir, 'as-shipped.yaml')
    expect(auditConfig(loadConfig(file), file).findings).toEqual([])
  })

  it('a device writes its own telemetry, and nothing of another device', async () => {
    const client = await connect(port, device('device-1'))
    await client.publishAsync('devices/device-1/telemetry/temp', '21.5', { qos: 1 })
    expect((await seen.waitForTopic('devices/device-1/telemetry/temp')).payload.toString()).toBe('21.5')
    expect(await pubackCode(client.publishAsync('devices/device-2/telemetry/temp', 'forged', { qos: 1 }))).toBe(version === 5 ? 0x87 : 0)
    expect(await subackCode(client.subscribeAsync('devices/#'))).toBe(version === 5 ? 0x87 : 0x80)
    // The refused publish never reached the broker: the allowed one sent after it arrives, alone.
    await client.publishAsync('devices/device-1/state', 'up', { qos: 1 })
    await seen.waitForTopic('devices/device-1/state')
    expect(seen.messages.map((msg) => msg.topic)).not.toContain('devices/device-2/telemetry/temp')
    await client.endAsync()
  })

  it('a dashboard account reads telemetry at QoS 0 and writes nothing', async () => {
    const client = await connect(port, person('grafana', 'grafana-secret'))
    const granted = await client.subscribeAsync('devices/+/telemetry/#', { qos: 0 })
    expect(granted[0]!.qos).toBe(0)
    // maxQos: 0 — a subscription asking for more is granted QoS 0.
    expect(await subackCode(client.subscribeAsync('devices/+/state', { qos: 1 }))).toBe(0)
    expect(await pubackCode(client.publishAsync('devices/device-1/commands/reboot', 'now', { qos: 1 }))).toBe(version === 5 ? 0x87 : 0)
    await client.publishAsync('devices/device-1/telemetry/x', 'probe', { qos: 0 }) // not allowed either
    const sender = await connect(port, device('device-1'))
    await sender.publishAsync('devices/device-1/telemetry/marker', 'm', { qos: 1 })
    await seen.waitForTopic('devices/device-1/telemetry/marker')
    expect(seen.messages.map((msg) => msg.topic)).not.toContain('devices/device-1/commands/reboot')
    expect(seen.messages.filter((msg) => msg.payload.toString() === 'probe')).toEqual([])
    await sender.endAsync()
    await client.endAsync()
  })

  it('refuses a client with neither certificate nor password, and a wrong password; the broker sees neither', async () => {
    const before = broker.connections()
    const anonymous = await tryConnect(`mqtts://127.0.0.1:${port}`, { ...person('x', 'y'), username: undefined, password: undefined })
    expect(anonymous.outcome).toBe('error')
    expect((anonymous.error as Error & { code?: number }).code).toBe(version === 5 ? 0x87 : 5)
    anonymous.client.end(true)
    const wrong = await tryConnect(`mqtts://127.0.0.1:${port}`, person('grafana', 'not-it'))
    expect(wrong.outcome).toBe('error')
    expect((wrong.error as Error & { code?: number }).code).toBe(version === 5 ? 0x86 : 4)
    wrong.client.end(true)
    expect(broker.connections()).toBe(before)
  })

  it('refuses plain TCP: there is no listener for it', async () => {
    const plain = await tryConnect(`mqtt://127.0.0.1:${port}`, { protocolVersion: version, reconnectPeriod: 0, connectTimeout: 2000 })
    expect(plain.outcome).not.toBe('connected')
    plain.client.end(true)
  })
})
