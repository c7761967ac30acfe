/**
 * The HTTP auth backend against a real HTTP service, a real broker behind Moat: allow (with groups
 * and attributes), deny, 401/403, timeout, 500, a body that is not the contract, connection
 * refused; the answer cache; lockout; and a client that pipelines CONNECT+SUBSCRIBE+PUBLISH while
 * the service is slow. Every refusal: the client's code, and the broker saw no connection from it.
 */
import { Writable } from 'node:stream'
import { generate, type Packet } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Moat } from '../../src/moat.js'
import { AuthService, json, refused, type AuthRequestBody } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, RawClient, uid } from '../helpers/clients.js'
import { freePort } from '../helpers/mosquitto.js'
import { startMoat, testConfig } from '../helpers/moat.js'

const kind = brokerKinds()[0]!

function answer(body: AuthRequestBody, res: import('node:http').ServerResponse, service: () => AuthService): void {
  const user = body.username ?? ''
  if (user.startsWith('allow')) {
    if (body.password !== 'right') return json(res, 200, { result: 'deny' })
    return json(res, 200, { result: 'allow', groups: ['fleet', 'eu'], attributes: { tenant: 'acme' } })
  }
  switch (user) {
    case 'deny': return json(res, 200, { result: 'deny' })
    case 'forbidden': return json(res, 403, { error: 'no' })
    case 'ignore': return json(res, 200, { result: 'ignore' })
    case 'broken': return json(res, 500, { error: 'boom' })
    case 'garbage': res.writeHead(200); res.end('<html>not json</html>'); return
    case 'slow': case 'held': service().hold(res); return
    default: return json(res, 200, { result: 'deny' })
  }
}

describe(`http auth in front of ${kind}`, () => {
  let broker: TestBroker
  let service: AuthService
  const moats: Moat[] = []
  let plain: Moat
  let port: number

  async function moatWith(auth: Record<string, unknown>): Promise<Moat> {
    const m = await startMoat(broker, { auth })
    moats.push(m)
    return m
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    service = await AuthService.start((body, res) => answer(body, res, () => service))
    plain = await moatWith({ backends: [{ type: 'http', url: service.url, timeout: '300ms', cache: false }], lockout: false })
    port = plain.address().port
  })

  afterAll(async () => {
    for (const m of moats) await m.shutdown(0)
    await service?.stop()
    await broker?.stop()
  })

  it('admits a client the service allows; identity (groups, attributes) on the session; the request carries the contract fields', async () => {
    const clientId = uid('dev')
    const client = await connect(port, { clientId, username: 'allow-1', password: 'right', protocolVersion: 5 })
    await client.publishAsync(`http/${clientId}`, 'x', { qos: 1 })
    await expect.poll(() => broker.received(clientId)).toEqual(['connect', `publish http/${clientId}`])
    expect(plain.sessionInfo().find((s) => s.clientId === clientId)).toMatchObject({
      username: 'allow-1', authenticatedBy: 'http', groups: ['fleet', 'eu'], claims: { tenant: 'acme' },
    })
    const request = service.requests.find((r) => r.clientId === clientId)!
    expect(request).toMatchObject({ username: 'allow-1', password: 'right', clientId, remoteAddress: '127.0.0.1', certificate: null, protocolVersion: 5, transport: 'tcp', listener: 'mqtt' })
    await client.endAsync()
  })

  const cases: Array<[string, string, number, number]> = [
    ['a deny answer', 'deny', 4, 0x86],
    ['a wrong password (deny answer)', 'allow-2', 4, 0x86],
    ['a 403 answer', 'forbidden', 4, 0x86],
    ['an ignore answer with nobody else to ask', 'ignore', 4, 0x86],
    ['a service that does not answer in time (fail closed)', 'slow', 5, 0x87],
    ['a service answering 500 (fail closed)', 'broken', 5, 0x87],
    ['a service answering something that is not the contract (fail closed)', 'garbage', 5, 0x87],
  ]
  for (const version of [4, 5] as const) {
    for (const [what, username, code311, code5] of cases) {
      it(`refuses on ${what}: MQTT ${version === 5 ? '5.0 0x' + code5.toString(16) : '3.1.1 ' + code311}; the broker sees nothing`, async () => {
        const clientId = uid('dev')
        const before = broker.connections()
        expect(await refused(port, { clientId, username, password: 'wrong', version })).toBe(version === 5 ? code5 : code311)
        expect(broker.connections()).toBe(before)
        await expect.poll(() => broker.received(clientId)).toEqual([])
      })
    }
  }

  it('counts backend failures by kind', () => {
    const s = plain.stats.auth
    expect(s.decided('backend_failed')).toBeGreaterThanOrEqual(6)
    expect(s.decided('bad_credentials')).toBeGreaterThanOrEqual(8)
  })

  it('refuses everyone while the service is unreachable (connection refused), counted each time and logged once', async () => {
    const lines: string[] = []
    const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(chunk.toString()); done() } })
    const url = `http://127.0.0.1:${await freePort()}/auth`
    const m = new Moat(testConfig(broker, { auth: { backends: [{ type: 'http', url, timeout: '2s' }], lockout: false } }), { logger: pino({ level: 'warn' }, sink) })
    await m.start()
    moats.push(m)
    const before = broker.connections()
    const codes = await Promise.all([1, 2, 3, 4, 5].map((i) => refused(m.address().port, { clientId: uid('down'), username: `allow-down-${i}`, password: 'right', version: 5 })))
    expect(codes).toEqual([0x87, 0x87, 0x87, 0x87, 0x87])
    expect(broker.connections()).toBe(before)
    expect(m.stats.auth.decided('backend_failed')).toBe(5)
    expect(m.stats.auth.errorsOf('http', 'unavailable')).toBe(5)
    const logged = lines.filter((l) => l.includes('"auth_backend_error"'))
    expect(logged).toHaveLength(1)
    expect(logged[0]).toContain('"kind":"unavailable"')
    expect(lines.join('')).not.toContain('right') // the password never reaches a log line
  })

  it('auth.timeout bounds the whole check even when the backend would wait longer: 0x87, counted as a timeout', async () => {
    const m = await moatWith({ timeout: '200ms', backends: [{ type: 'http', url: service.url, timeout: '30s', cache: false }], lockout: false })
    const before = broker.connections()
    expect(await refused(m.address().port, { clientId: uid('t'), username: 'slow', password: 'x', version: 5 })).toBe(0x87)
    expect(broker.connections()).toBe(before)
    expect(m.stats.auth.decided('backend_failed')).toBe(1)
    expect(m.stats.auth.errorsOf('http', 'timeout')).toBe(1)
  })

  it('caches answers: a repeated allow and a repeated deny do not reach the service again', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, cache: { ttl: '1m', negativeTtl: '1m' } }], lockout: false })
    const p = m.address().port
    for (let i = 0; i < 3; i++) {
      const client = await connect(p, { clientId: 'cached-dev', username: 'allow-cached', password: 'right' })
      await client.endAsync()
      expect(await refused(p, { clientId: 'cached-bad', username: 'allow-cached', password: 'wrong' })).toBe(4)
    }
    expect(service.requests.filter((r) => r.username === 'allow-cached')).toHaveLength(2) // one allow, one deny
  })

  it('lockout: after 3 failures the 4th attempt is refused like a bad password, without reaching the service, even with the right password', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, cache: false }], lockout: { maxFailures: 3, window: '1m', ban: '1m' } })
    const p = m.address().port
    for (let i = 0; i < 3; i++) expect(await refused(p, { clientId: uid('lock'), username: 'allow-locked', password: 'guess' })).toBe(4)
    expect(service.requestsFor('allow-locked')).toBe(3)
    const before = broker.connections()
    const clientId = uid('lock')
    expect(await refused(p, { clientId, username: 'allow-locked', password: 'right' })).toBe(4)
    expect(await refused(p, { clientId, username: 'allow-locked', password: 'right', version: 5 })).toBe(0x86)
    expect(service.requestsFor('allow-locked')).toBe(3)
    // The address is banned too: another user from it is refused without a request.
    expect(await refused(p, { clientId, username: 'allow-other', password: 'right' })).toBe(4)
    expect(service.requestsFor('allow-other')).toBe(0)
    expect(broker.connections()).toBe(before)
    expect(m.stats.auth.decided('banned')).toBe(3)
  })

  it('lockout per user name with reply: banned answers 5.0 0x8A; other users from the same address still get in', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, cache: false }], lockout: { maxFailures: 2, per: ['username'], reply: 'banned' } })
    const p = m.address().port
    for (let i = 0; i < 2; i++) expect(await refused(p, { clientId: uid('lock'), username: 'allow-banned', password: 'guess', version: 5 })).toBe(0x86)
    expect(await refused(p, { clientId: uid('lock'), username: 'allow-banned', password: 'right', version: 5 })).toBe(0x8a)
    expect(await refused(p, { clientId: uid('lock'), username: 'allow-banned', password: 'right', version: 4 })).toBe(5)
    expect(service.requestsFor('allow-banned')).toBe(2)
    const client = await connect(p, { clientId: uid('ok'), username: 'allow-fine', password: 'right' })
    await client.endAsync()
  })

  it('exports auth metrics on /metrics (attempts, decisions, errors, duration histogram, bounded labels)', async () => {
    const m = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0 }, auth: { backends: [{ type: 'http', url: service.url, timeout: '300ms', cache: false }], lockout: false } })
    moats.push(m)
    const p = m.address().port
    const client = await connect(p, { clientId: uid('m'), username: 'allow-m', password: 'right' })
    await client.endAsync()
    expect(await refused(p, { clientId: uid('m'), username: 'deny', password: 'x' })).toBe(4)
    expect(await refused(p, { clientId: uid('m'), username: 'broken', password: 'x' })).toBe(5)
    const text = await (await fetch(`http://127.0.0.1:${m.adminAddress()!.port}/metrics`)).text()
    const value = (sample: string): number => Number(text.split('\n').find((l) => l.startsWith(sample + ' '))?.split(' ')[1])
    expect(value('moat_auth_attempts_total{backend="http",outcome="allow"}')).toBe(1)
    expect(value('moat_auth_attempts_total{backend="http",outcome="deny"}')).toBe(1)
    expect(value('moat_auth_attempts_total{backend="http",outcome="error"}')).toBe(1)
    expect(value('moat_auth_decisions_total{decision="allowed"}')).toBe(1)
    expect(value('moat_auth_decisions_total{decision="bad_credentials"}')).toBe(1)
    expect(value('moat_auth_decisions_total{decision="backend_failed"}')).toBe(1)
    expect(value('moat_auth_backend_errors_total{backend="http",kind="bad_response"}')).toBe(1)
    expect(value('moat_auth_backend_duration_seconds_count{backend="http"}')).toBe(3)
    expect(value('moat_auth_backend_duration_seconds_bucket{backend="http",le="+Inf"}')).toBe(3)
    expect(value('moat_sessions_closed_total{reason="bad_credentials"}')).toBe(1)
    expect(text).toMatch(/# TYPE moat_auth_backend_duration_seconds histogram/)
    expect(text).not.toContain('allow-m') // no user names in labels
  })

  it('a client that leaves while the service thinks ends its session; nothing reaches the broker, no backend failure counted', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, timeout: '10s', cache: false }], lockout: false })
    const clientId = uid('leaver')
    const raw = new RawClient(m.address().port, 4)
    await raw.connected()
    raw.send(connectPacket(clientId, 4, { username: 'held', password: Buffer.from('any') }))
    await expect.poll(() => service.requests.some((r) => r.clientId === clientId)).toBe(true)
    raw.destroy()
    await expect.poll(() => m.sessionCount).toBe(0)
    await expect.poll(() => broker.received(clientId)).toEqual([])
    expect(m.stats.auth.decided('backend_failed')).toBe(0)
    expect([...m.stats.auth.errors].every((v) => v === 0)).toBe(true)
  })

  it('while the service thinks, holds a bounded amount of what the client sends (the socket is paused), then forwards all of it in order', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, timeout: '10s', cache: false }], lockout: false })
    const clientId = uid('flood')
    const raw = new RawClient(m.address().port, 4)
    await raw.connected()
    const publishes = Array.from({ length: 64 }, (_, i) => generate({ cmd: 'publish', topic: `flood/${clientId}/${i}`, payload: Buffer.alloc(32 * 1024, i), qos: 0, retain: false, dup: false }))
    raw.send(Buffer.concat([generate(connectPacket(clientId, 4, { username: 'held', password: Buffer.from('any') })), ...publishes])) // 2 MiB in one write
    await expect.poll(() => service.requests.some((r) => r.clientId === clientId)).toBe(true)
    const info = (): { clientReadBuffer: number; clientPaused: boolean } => m.sessionInfo().find((s) => s.clientId === clientId)!
    expect(info().clientPaused).toBe(true)
    const held = info().clientReadBuffer
    expect(held).toBeLessThan(512 * 1024) // the rest waits in the kernel and the client, not in Moat
    await expect.poll(() => broker.received(clientId)).toEqual([])
    service.release({ result: 'allow' })
    await expect.poll(() => broker.received(clientId).length, { timeout: 10_000 }).toBe(65)
    await expect.poll(() => broker.received(clientId)).toEqual(['connect', ...publishes.map((_, i) => `publish flood/${clientId}/${i}`)])
    raw.destroy()
  })

  it('holds a pipelined CONNECT+SUBSCRIBE+PUBLISH while the service thinks, then forwards them in order', async () => {
    const m = await moatWith({ backends: [{ type: 'http', url: service.url, timeout: '10s', cache: false }], lockout: false })
    const clientId = uid('pipe')
    const topic = `pipe/${clientId}`
    const raw = new RawClient(m.address().port, 4)
    await raw.connected()
    raw.send(Buffer.concat([
      generate(connectPacket(clientId, 4, { username: 'held', password: Buffer.from('any') })),
      generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] } as Packet),
      generate({ cmd: 'publish', topic, payload: Buffer.from('after auth'), qos: 1, messageId: 2, retain: false, dup: false }),
    ]))
    await expect.poll(() => service.requests.some((r) => r.clientId === clientId)).toBe(true)
    await expect.poll(() => broker.received(clientId)).toEqual([]) // nothing before the decision
    expect(m.sessionInfo().find((s) => s.clientId === clientId)?.clientPaused).toBe(true)
    service.release({ result: 'allow' })
    const packets = [await raw.nextPacket(), await raw.nextPacket(), await raw.nextPacket(), await raw.nextPacket()]
    expect(packets.map((p) => p?.cmd).sort()).toEqual(['connack', 'puback', 'publish', 'suback'])
    expect(packets[0]!.cmd).toBe('connack')
    expect(packets.find((p) => p?.cmd === 'publish')).toMatchObject({ topic, payload: Buffer.from('after auth') })
    await expect.poll(() => broker.received(clientId)).toEqual(['connect', 'subscribe', `publish ${topic}`])
    raw.destroy()
  })
})
