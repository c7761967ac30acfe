/**
 * Moat reaching the broker over TLS: the broker's certificate verified against a CA (or not, with
 * `insecure: true`, logged loudly), and Moat's own client certificate for brokers that require one.
 * The broker is Mosquitto with a TLS listener where it is installed, and Aedes behind Node's TLS
 * server otherwise, so the test always runs against a real TLS stack and a real broker.
 */
import { once } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { Aedes } from 'aedes'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { MoatConfig } from '../../src/config/types.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connect, connectPacket, Inbox, RawClient, shortId, uid } from '../helpers/clients.js'
import { configWith, listener, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'
import { mosquittoPath, startMosquitto } from '../helpers/mosquitto.js'

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts(['moat-upstream'])
})
afterAll(() => certs.cleanup())

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface TlsBroker {
  readonly port: number
  /** MQTT clients (by client id) the broker accepted a CONNECT from. */
  connected(clientId: string): boolean
}

/** A broker with a TLS listener that requires a client certificate from the test CA. */
async function startTlsBroker(): Promise<TlsBroker> {
  if (mosquittoPath() !== null) {
    // Mosquitto started as root drops to user 'mosquitto' before reading the key: keep our user.
    const m = await startMosquitto({ listenerLines: [`cafile ${certs.ca}`, `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`, 'require_certificate true', `user ${userInfo().username}`] })
    cleanups.push(() => m.stop())
    return { port: m.port, connected: (id) => m.logs.some((l) => l.includes(` as ${id} (`)) }
  }
  const broker = await Aedes.createBroker()
  const ids = new Set<string>()
  broker.on('client', (c) => ids.add(c.id))
  const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key), ca: readFileSync(certs.ca), requestCert: true, rejectUnauthorized: true }, broker.handle)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(async () => {
    server.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
  })
  return { port: (server.address() as net.AddressInfo).port, connected: (id) => ids.has(id) }
}

async function moatTo(broker: TlsBroker, upstreamTls: NonNullable<MoatConfig['upstream']['tls']>): Promise<LoggedMoat> {
  const m = await startMoatWith(configWith({ host: '127.0.0.1', port: broker.port }, [listener('mqtt', 'mqtt')], { upstreamExtra: { tls: upstreamTls } }))
  cleanups.push(() => m.moat.shutdown(0))
  return m
}

const client = (): { cert: string; key: string } => certs.clients['moat-upstream']!
const upstreamTls = (extra: Partial<NonNullable<MoatConfig['upstream']['tls']>>): NonNullable<MoatConfig['upstream']['tls']> =>
  ({ ca: certs.ca, cert: client().cert, key: client().key, passphrase: null, servername: null, insecure: false, ...extra })

describe('upstream TLS', () => {
  it('verifies the broker against the CA, presents a client certificate, and messages flow both ways', async () => {
    const broker = await startTlsBroker()
    const m = await moatTo(broker, upstreamTls({}))
    const clientId = shortId()
    const topic = uid('up/tls')
    const c = await connect(m.moat.address().port, { clientId })
    cleanups.push(() => c.endAsync())
    const inbox = new Inbox(c)
    await c.subscribeAsync(topic, { qos: 1 })
    await c.publishAsync(topic, 'via tls upstream', { qos: 1 })
    expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('via tls upstream')
    expect(broker.connected(clientId)).toBe(true)
  })

  it('refuses a broker whose certificate is not from the CA: the client is told "server unavailable"', async () => {
    const broker = await startTlsBroker()
    const m = await moatTo(broker, upstreamTls({ ca: certs.stranger.ca }))
    const clientId = shortId()
    const raw = new RawClient(m.moat.address().port, 4)
    await raw.connected()
    raw.send(connectPacket(clientId, 4))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 3 })
    expect(m.moat.stats.upstreamConnectFailures).toBe(1)
    expect(String(m.logs.find((l) => l.event === 'upstream_unavailable')?.error)).toMatch(/certificate/i)
    expect(broker.connected(clientId)).toBe(false)
  })

  it('checks the broker certificate names the host (servername overrides it)', async () => {
    const broker = await startTlsBroker()
    const m = await moatTo(broker, upstreamTls({ servername: 'broker.elsewhere.test' }))
    const raw = new RawClient(m.moat.address().port, 4)
    await raw.connected()
    raw.send(connectPacket(shortId(), 4))
    expect(await raw.nextPacket()).toMatchObject({ cmd: 'connack', returnCode: 3 })
    expect(String(m.logs.find((l) => l.event === 'upstream_unavailable')?.error)).toMatch(/altnames|Hostname/i)
  })

  it('insecure: true skips verification, with a warning at start', async () => {
    const broker = await startTlsBroker()
    const m = await moatTo(broker, upstreamTls({ ca: null, insecure: true }))
    expect(m.logs.find((l) => l.event === 'upstream_tls_insecure')).toMatchObject({ level: 'warn' })
    const clientId = shortId()
    const c = await connect(m.moat.address().port, { clientId })
    await c.endAsync()
    expect(broker.connected(clientId)).toBe(true)
  })
})
