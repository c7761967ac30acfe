/**
 * Connection limits at accept time: new connections per second per address, open connections per
 * address / per user name / in total, and overload protection (new connections refused, established
 * ones keep working). Every refusal is a CONNACK in the client's version (5.0: 0x9F connection rate
 * exceeded, 0x97 quota exceeded, 0x89 server busy; 3.1.1: 3, server unavailable), and the broker
 * never sees the refused connection.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, Inbox, RawClient, uid } from '../helpers/clients.js'
import { limitsFrom, passwordAuth, startMoat } from '../helpers/moat.js'

/** Connects and sends CONNECT; resolves with the CONNACK code (0 = accepted) and the client. */
async function attempt(port: number, version: ProtocolLevel, extra: Record<string, unknown> = {}): Promise<{ code: number | null; raw: RawClient }> {
  const raw = new RawClient(port, version)
  await raw.connected()
  raw.send(connectPacket(uid('c'), version, extra))
  const answer = await raw.nextPacket(undefined, 10_000)
  if (answer === null || answer.cmd !== 'connack') return { code: null, raw }
  return { code: (answer as { reasonCode?: number; returnCode?: number }).reasonCode ?? (answer as { returnCode?: number }).returnCode ?? -1, raw }
}

for (const kind of brokerKinds()) {
  const has5 = brokerVersions(kind).includes(5)
  describe(`connection limits (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat | null = null
    beforeAll(async () => {
      broker = await startBroker(kind)
    })
    afterEach(async () => {
      await moat?.shutdown(0)
      moat = null
    })
    afterAll(async () => {
      await broker?.stop()
    })

    it('500 connection attempts from one address against 20/s are cut down to the limit; the broker sees only those', async () => {
      moat = await startMoat(broker, { limits: limitsFrom({ connections: { perAddressRate: '20/s' } }) })
      const port = moat.address().port
      const before = broker.connections()
      const started = performance.now()
      const codes: Array<number | null> = []
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < 500) {
          next++
          const { code, raw } = await attempt(port, 4)
          codes.push(code)
          raw.destroy()
        }
      }
      await Promise.all(Array.from({ length: 25 }, worker))
      const elapsed = (performance.now() - started) / 1000
      const accepted = codes.filter((c) => c === 0).length
      const refused = codes.filter((c) => c === 3).length
      expect(accepted + refused).toBe(500)
      // A full bucket (20) plus 20 a second for as long as the loop ran.
      const allowed = 20 + Math.ceil(20 * elapsed) + 1
      expect(accepted).toBeGreaterThanOrEqual(20)
      expect(accepted).toBeLessThanOrEqual(allowed)
      // (Mosquitto's log may still be delivering a line from before the loop: at least, not exactly.)
      expect(broker.connections() - before).toBeGreaterThanOrEqual(accepted)
      expect(broker.connections() - before).toBeLessThanOrEqual(allowed)
      expect(moat.limiter.refusedFor('connection_rate')).toBe(refused)
      expect(moat.stats.closedFor('connection_rate')).toBe(refused)
    }, 60_000)

    it('/metrics counts refused connections by reason, and throttled sessions', async () => {
      moat = await startMoat(broker, {
        admin: { host: '127.0.0.1', port: 0 },
        limits: limitsFrom({ connections: { perAddressRate: '1/m' }, messageRate: '1/h' }),
      })
      const port = moat.address().port
      const ok = await attempt(port, 4)
      expect(ok.code).toBe(0)
      const refused = await attempt(port, 4)
      expect(refused.code).toBe(3)
      ok.raw.send(Buffer.concat([0, 1].map(() => generate({ cmd: 'publish', topic: 'metrics/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))))
      await expect.poll(() => moat!.stats.sessionsThrottled).toBe(1)
      const { host, port: adminPort } = moat.adminAddress()!
      const text = await (await fetch(`http://${host}:${adminPort}/metrics`)).text()
      expect(text).toContain('moat_connections_refused_total{listener="mqtt",reason="connection_rate"} 1')
      expect(text).not.toContain('reason="too_many_connections"')
      expect(text).toContain('moat_sessions_throttled 1')
      expect(text).toContain('moat_throttle_waits_total 1')
      expect(text).toContain('moat_sessions_closed_total{reason="connection_rate"} 1')
      ok.raw.destroy()
    })

    if (has5) {
      it('5.0: a connection over the rate gets CONNACK 0x9F', async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ connections: { perAddressRate: '1/m' } }) })
        const first = await attempt(moat.address().port, 5)
        expect(first.code).toBe(0)
        const before = broker.connections()
        const second = await attempt(moat.address().port, 5)
        expect(second.code).toBe(0x9f)
        await second.raw.closed
        expect(broker.connections()).toBe(before)
        first.raw.destroy()
      })
    }

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      const refusedCode = version === 5 ? 0x97 : 3
      it(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: open connections per address and in total; a slot is given back when a client leaves`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ connections: { perAddress: 2, total: 3 } }) })
        const port = moat.address().port
        const a = await attempt(port, version)
        const b = await attempt(port, version)
        expect([a.code, b.code]).toEqual([0, 0])
        const before = broker.connections()
        const c = await attempt(port, version)
        expect(c.code).toBe(refusedCode)
        await c.raw.closed
        expect(broker.connections()).toBe(before)
        a.raw.destroy()
        await a.raw.closed
        await expect.poll(() => moat!.sessionCount).toBe(1) // only b is left (a left, c was refused)
        const d = await attempt(port, version)
        expect(d.code).toBe(0)
        b.raw.destroy()
        d.raw.destroy()
        expect(moat.limiter.refusedFor('too_many_connections')).toBe(1)
      })

      it(`MQTT ${version === 5 ? '5.0' : '3.1.1'}: open connections per user name`, async () => {
        moat = await startMoat(broker, { limits: limitsFrom({ connections: { perUsername: 1 } }), auth: await passwordAuth(['bob', 'carol']) })
        const port = moat.address().port
        const pw = Buffer.from('pw')
        const a = await attempt(port, version, { username: 'bob', password: pw })
        expect(a.code).toBe(0)
        const other = await attempt(port, version, { username: 'carol', password: pw })
        expect(other.code).toBe(0)
        const before = broker.connections()
        const b = await attempt(port, version, { username: 'bob', password: pw })
        expect(b.code).toBe(refusedCode)
        await b.raw.closed
        expect(broker.connections()).toBe(before)
        a.raw.destroy()
        other.raw.destroy()
      })
    }

    it('overload: past the memory ceiling new connections are refused, established ones keep working (and a reload applies it)', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'moat-overload-'))
      const file = join(dir, 'moat.yaml')
      const yaml = (overload: string): string => [
        'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
        `upstream: { host: ${broker.host}, port: ${broker.port} }`,
        `limits: { overload: { ${overload} } }`,
        'log: { level: silent }',
        'auth: { anonymous: true }',
      ].join('\n')
      writeFileSync(file, yaml('sampleInterval: 20ms'))
      moat = new Moat(loadConfig(file), { logger: pino({ level: 'silent' }) })
      await moat.start()
      const port = moat.address().port
      const topic = uid('overload')
      const established = await connect(port)
      const watcher = await connect(broker.port)
      const inbox = new Inbox(watcher)
      await watcher.subscribeAsync(topic)

      writeFileSync(file, yaml('sampleInterval: 20ms, memory: 1MiB'))
      expect(moat.reload()).toBe(true)
      await expect.poll(() => moat!.overload.overloaded, { timeout: 5000 }).toBe(true)
      const before = broker.connections()
      const refused = await attempt(port, has5 ? 5 : 4)
      expect(refused.code).toBe(has5 ? 0x89 : 3)
      await refused.raw.closed
      expect(broker.connections()).toBe(before)
      expect(moat.limiter.refusedFor('server_overloaded')).toBe(1)

      await established.publishAsync(topic, 'still here')
      expect((await inbox.waitForTopic(topic)).payload.toString()).toBe('still here')

      writeFileSync(file, yaml('sampleInterval: 20ms'))
      expect(moat.reload()).toBe(true)
      await expect.poll(() => moat!.overload.overloaded, { timeout: 5000 }).toBe(false)
      const again = await attempt(port, 4)
      expect(again.code).toBe(0)
      again.raw.destroy()
      await established.endAsync()
      await watcher.endAsync()
    })
  })
}
