/**
 * TLS session resumption on one Moat (`tls.resumption`), seen by three client implementations:
 * Node's tls (`isSessionReused()`), `openssl s_client -sess_out/-sess_in`, and Python's ssl
 * (`session=`). Tickets over TLS 1.2 and 1.3, the TLS 1.2 session-id cache and its bound, the
 * lifetime, a key rotation, resumption turned off, and listeners that never read each other's
 * tickets; moat_tls_handshakes_total counts each handshake full or resumed. Certificates are made
 * at test time.
 */
import { constants } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import type { IClientOptions } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { TlsResumptionConfig } from '../../src/config/types.js'
import { makeDevCerts } from '../../src/certs.js'
import { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { Inbox, uid } from '../helpers/clients.js'
import { capturingLogger, configWith, listener, listenerTls, tryConnect } from '../helpers/listeners.js'
import { dial, handshakesIn, ManualSeeds, pythonDials, sClient } from '../helpers/resumption.js'

let certs: TestCerts
let broker: TestBroker
let ca: Buffer
let scratch: string
beforeAll(async () => {
  certs = makeTestCerts(['device-1'])
  ca = readFileSync(certs.ca)
  broker = await startBroker('aedes')
  scratch = mkdtempSync(join(tmpdir(), 'moat-resumption-'))
})
afterAll(async () => {
  await broker.stop()
  certs.cleanup()
})

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function start(resumption?: Partial<TlsResumptionConfig>, options: { seeds?: ManualSeeds; listeners?: string[] } = {}): Promise<{ moat: Moat; port: (name?: string) => number }> {
  const full = resumption === undefined ? undefined : { enabled: true, lifetimeMs: 7_200_000, rotateMs: 43_200_000, sessionCache: 10_000, ...resumption }
  const names = options.listeners ?? ['secure']
  const config = configWith(broker, names.map((name) => listener(name, 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, full === undefined ? {} : { resumption: full }) })))
  const moat = new Moat(config, { logger: capturingLogger([]), ...(options.seeds === undefined ? {} : { ticketSeeds: options.seeds }) })
  await moat.start()
  cleanups.push(() => moat.shutdown(0))
  return { moat, port: (name = 'secure') => moat.address(name).port }
}

for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
  describe(`session tickets over ${version}`, () => {
    it('Node: the second connection resumes with the first one\'s session, and the handshakes count as full then resumed', async () => {
      const { moat, port } = await start()
      const first = await dial(port(), ca, { minVersion: version, maxVersion: version })
      expect(first).toMatchObject({ reused: false, protocol: version, error: null })
      expect(first.session).not.toBeNull()
      for (let i = 0; i < 3; i++) {
        const again = await dial(port(), ca, { minVersion: version, maxVersion: version, session: first.session! })
        expect(again).toMatchObject({ reused: true, protocol: version })
      }
      await expect.poll(() => moat.stats.tls.handshakes('secure', 'resumed')).toBe(3)
      expect(moat.stats.tls.handshakes('secure', 'full')).toBe(1)
      const metrics = await moat.registry.getSingleMetricAsString('moat_tls_handshakes_total')
      expect(handshakesIn(metrics, 'secure', 'full')).toBe(1)
      expect(handshakesIn(metrics, 'secure', 'resumed')).toBe(3)
    })

    it('openssl s_client -sess_out then -sess_in: New, then Reused', async () => {
      const { moat, port } = await start()
      const flag = version === 'TLSv1.2' ? '-tls1_2' : '-tls1_3'
      const file = join(scratch, `s_client-${version}.pem`)
      const first = await sClient(port(), certs.ca, file, 'out', [flag])
      expect(first.output).toMatch(new RegExp(`^New, ${version.replace('.', '\\.')}`, 'm'))
      const second = await sClient(port(), certs.ca, file, 'in', [flag])
      expect(second.reused, second.output).toBe(true)
      await expect.poll(() => moat.stats.tls.handshakes('secure', 'resumed')).toBe(1)
    })

    it('Python ssl with session=: every connection after the first resumes', async () => {
      const { moat, port } = await start()
      expect(await pythonDials(port(), certs.ca, version === 'TLSv1.2' ? 'TLSv1_2' : 'TLSv1_3', 4, scratch)).toEqual([false, true, true, true])
      await expect.poll(() => moat.stats.tls.handshakes('secure', 'resumed')).toBe(3)
    })

    it('a ticket stops resuming when its key rotates, and the new key\'s tickets resume', async () => {
      const seeds = new ManualSeeds()
      const { port } = await start({}, { seeds })
      const options = { minVersion: version, maxVersion: version } as const
      const first = await dial(port(), ca, options)
      expect((await dial(port(), ca, { ...options, session: first.session! })).reused).toBe(true)
      seeds.rotate('secure')
      const after = await dial(port(), ca, { ...options, session: first.session! })
      expect(after.reused).toBe(false)
      expect((await dial(port(), ca, { ...options, session: after.session! })).reused).toBe(true)
    })

    it('a ticket stops resuming after its lifetime', async () => {
      const { port } = await start({ lifetimeMs: 1000, rotateMs: 3_600_000 })
      const options = { minVersion: version, maxVersion: version } as const
      const first = await dial(port(), ca, options)
      expect((await dial(port(), ca, { ...options, session: first.session! })).reused).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 2200))
      expect((await dial(port(), ca, { ...options, session: first.session! })).reused).toBe(false)
    })
  })
}

describe('MQTT.js with the session of its previous connection', () => {
  it('resumes, and the resumed connection carries MQTT both ways', async () => {
    const { moat, port } = await start()
    const url = `mqtts://127.0.0.1:${port()}`
    const first = await tryConnect(url, { ca } as IClientOptions)
    expect(first.outcome).toBe('connected')
    const stream = first.client.stream as unknown as TLSSocket
    await expect.poll(() => stream.getSession() !== undefined).toBe(true)
    const session = stream.getSession()!
    await first.client.endAsync()
    const second = await tryConnect(url, { ca, session } as IClientOptions)
    cleanups.push(() => second.client.endAsync())
    expect(second.outcome).toBe('connected')
    expect((second.client.stream as unknown as TLSSocket).isSessionReused()).toBe(true)
    const topic = uid('resumed')
    const inbox = new Inbox(second.client)
    await second.client.subscribeAsync(topic, { qos: 1 })
    await second.client.publishAsync(topic, 'over a resumed session', { qos: 1 })
    expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('over a resumed session')
    expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(1)
  })
})

describe('the TLS 1.2 session-id cache (clients without tickets)', () => {
  const noTicket = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const

  it('is off by default: a client without tickets makes a full handshake each time (one with tickets resumes)', async () => {
    const { port } = await start()
    const first = await dial(port(), ca, noTicket)
    expect((await dial(port(), ca, { ...noTicket, session: first.session! })).reused).toBe(false)
    const ticket = await dial(port(), ca, { maxVersion: 'TLSv1.2' })
    expect((await dial(port(), ca, { maxVersion: 'TLSv1.2', session: ticket.session! })).reused).toBe(true)
  })

  it('with sessionCache set, resumes a Node client and openssl s_client -no_ticket by session id', async () => {
    const { moat, port } = await start({ sessionCache: 10_000 })
    const first = await dial(port(), ca, noTicket)
    expect(first.reused).toBe(false)
    expect((await dial(port(), ca, { ...noTicket, session: first.session! })).reused).toBe(true)
    const file = join(scratch, 's_client-id.pem')
    expect((await sClient(port(), certs.ca, file, 'out', ['-tls1_2', '-no_ticket'])).reused).toBe(false)
    const second = await sClient(port(), certs.ca, file, 'in', ['-tls1_2', '-no_ticket'])
    expect(second.reused, second.output).toBe(true)
    expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(2)
  })

  it('holds at most sessionCache sessions: the oldest is dropped and no longer resumes', async () => {
    const { port } = await start({ sessionCache: 2 })
    const sessions = []
    for (let i = 0; i < 3; i++) sessions.push((await dial(port(), ca, noTicket)).session!)
    expect((await dial(port(), ca, { ...noTicket, session: sessions[0]! })).reused).toBe(false)
    expect((await dial(port(), ca, { ...noTicket, session: sessions[2]! })).reused).toBe(true)
  })

  it('sessionCache: 0 keeps none (tickets still resume)', async () => {
    const { port } = await start({ sessionCache: 0 })
    const first = await dial(port(), ca, noTicket)
    expect((await dial(port(), ca, { ...noTicket, session: first.session! })).reused).toBe(false)
    const ticket = await dial(port(), ca, { maxVersion: 'TLSv1.2' })
    expect((await dial(port(), ca, { maxVersion: 'TLSv1.2', session: ticket.session! })).reused).toBe(true)
  })
})

describe('resumption: { enabled: false }', () => {
  it('resumes nothing: no ticket over TLS 1.2 or 1.3, no session id; every handshake is full', async () => {
    const { moat, port } = await start({ enabled: false })
    for (const options of [{ maxVersion: 'TLSv1.2' }, { minVersion: 'TLSv1.3' }, { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET }] as const) {
      const first = await dial(port(), ca, options)
      expect(first.error).toBeNull()
      // The client still has a session to offer (an id, or a ticket the server cannot open).
      expect(first.session).not.toBeNull()
      expect((await dial(port(), ca, { ...options, session: first.session! })).reused).toBe(false)
    }
    expect(moat.stats.tls.handshakes('secure', 'resumed')).toBe(0)
    expect(await pythonDials(port(), certs.ca, 'TLSv1_3', 2, scratch)).toEqual([false, false])
  })
})

describe('SNI', () => {
  it('a session made under an SNI certificate resumes too', async () => {
    const other = makeDevCerts({ out: join(scratch, 'sni'), clients: [], hosts: ['mqtt.example.test'], caName: 'SNI CA' })
    const sni = [{ servername: 'mqtt.example.test', cert: other.server.cert, key: other.server.key, passphrase: null }]
    const moat = new Moat(configWith(broker, [listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, { sni }) })]), { logger: capturingLogger([]) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address('secure').port
    const named = { ca: readFileSync(other.ca), servername: 'mqtt.example.test' }
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await dial(port, ca, { ...named, minVersion: version, maxVersion: version })
      expect(first).toMatchObject({ reused: false, error: null })
      expect((await dial(port, ca, { ...named, minVersion: version, maxVersion: version, session: first.session! })).reused).toBe(true)
    }
  })
})

describe('two TLS listeners', () => {
  it('never resume each other\'s tickets, even with the same certificate', async () => {
    const { port } = await start({}, { listeners: ['one', 'two'] })
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await dial(port('one'), ca, { minVersion: version, maxVersion: version })
      expect((await dial(port('two'), ca, { minVersion: version, maxVersion: version, session: first.session! })).reused).toBe(false)
      expect((await dial(port('one'), ca, { minVersion: version, maxVersion: version, session: first.session! })).reused).toBe(true)
    }
  })
})
