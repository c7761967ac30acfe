/**
 * `coalescing` as a user runs it: node dist/cli.js (built by test/global-setup.ts) in front of a
 * real Mosquitto, with a raw client pushing a flood of QoS 1 PUBLISH packets through it. Above the
 * packet rate, busy turns of Moat's event loop wait (moat_coalescing_waits_total counts them), and
 * every message still arrives whole and in order on both paths through Moat: at a subscriber on the
 * broker itself (client → broker) and at a subscriber behind Moat (broker → client). Below the
 * rate, or with `wait: 0`, nothing waits; a reload turns it on; with `workers: 2` each worker
 * coalesces on its own and /metrics sums their waits. Under a steady load of many clients, each
 * sending a packet now and then, the waits gather nothing and go off (moat_coalescing_backoffs_total).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { connect, Inbox, rawSession, shortId } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { MoatProcess } from '../helpers/moat-process.js'
import { startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

const SLOW = 60_000
const MESSAGES = 3000
const FRAMES_PER_WRITE = 100

describe('coalescing in front of mosquitto', () => {
  let broker: MosquittoProcess
  let witness: MqttClient
  let seen: Inbox
  let dir: string
  const running: Array<MoatProcess | MoatCluster> = []
  const open: MqttClient[] = []

  const config = (coalescing: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    listeners: [{ name: 'edge', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: '127.0.0.1', port: broker.port },
    admin: { host: '127.0.0.1', port: 0 },
    auth: { anonymous: true },
    acl: { rules: [{ name: 'flood', allow: 'all', topic: 'flood/#' }] },
    coalescing,
    ...extra,
  })

  /**
   * MESSAGES numbered QoS 1 messages pushed through Moat in writes of FRAMES_PER_WRITE frames, with
   * a subscriber behind Moat; checks that the broker's own subscriber and the one behind Moat got
   * every message, in order, intact, and that the publisher got every PUBACK.
   */
  async function flood(port: number): Promise<void> {
    const topic = `flood/${shortId()}`
    const behind = await connect(port)
    open.push(behind)
    const inbox = new Inbox(behind)
    await behind.subscribeAsync(topic, { qos: 1 })
    const firstSeen = seen.messages.length
    const publisher = await rawSession(port, `flood-${shortId()}`)
    for (let start = 0; start < MESSAGES; start += FRAMES_PER_WRITE) {
      const frames: Buffer[] = []
      for (let n = start; n < start + FRAMES_PER_WRITE; n++) {
        const payload = Buffer.alloc(64, n % 251)
        payload.writeUInt32BE(n, 0)
        frames.push(generate({ cmd: 'publish', topic, payload, qos: 1, messageId: n + 1, retain: false, dup: false }))
      }
      publisher.send(Buffer.concat(frames))
    }
    await publisher.nextPacket(MESSAGES, SLOW) // CONNACK + one PUBACK per message
    expect(publisher.packets.slice(1).map((p) => p.cmd === 'puback' ? p.messageId : p.cmd)).toEqual(Array.from({ length: MESSAGES }, (_, n) => n + 1))
    publisher.destroy()

    for (const [name, messages] of [['behind Moat', (await inbox.waitFor(MESSAGES, SLOW))], ['on the broker', (await seen.waitFor(firstSeen + MESSAGES, SLOW)).slice(firstSeen)]] as const) {
      const numbers = messages.map((m) => m.payload.readUInt32BE(0))
      expect(numbers, name).toEqual(Array.from({ length: MESSAGES }, (_, n) => n))
      expect(messages.every((m, n) => m.topic === topic && m.payload.length === 64 && m.payload[4] === n % 251), name).toBe(true)
    }
  }

  beforeAll(async () => {
    broker = await startMosquitto({ quiet: true })
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('flood/#', { qos: 1 })
    dir = mkdtempSync(join(tmpdir(), 'moat-coalescing-'))
  }, SLOW)

  afterEach(async () => {
    for (const client of open.splice(0)) await client.endAsync()
    for (const moat of running.splice(0)) await (moat instanceof MoatProcess ? moat.stop() : moat.kill())
  })

  afterAll(async () => {
    await witness?.endAsync()
    await broker?.stop()
  })

  it('above the rate, busy turns wait, and every message arrives whole and in order both ways', async () => {
    const moat = await MoatProcess.start(dir, 'above.yaml', config({ wait: '300us', above: '1000/s' }))
    running.push(moat)
    await flood(moat.port)
    expect(await moat.metric('moat_coalescing_waits_total')).toBeGreaterThan(0)
    expect(await moat.metric('moat_coalescing_wait_seconds_total')).toBeGreaterThan(0)
  }, SLOW)

  it('a steady load of many clients, a packet each now and then: the waits do not gather, go off and back off; every message arrives', async () => {
    const moat = await MoatProcess.start(dir, 'steady.yaml', config({ wait: '300us', above: '1000/s' }))
    running.push(moat)
    const CLIENTS = 20
    const EACH = 100
    const topic = `flood/${shortId()}`
    const firstSeen = seen.messages.length
    const publishers = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => rawSession(moat.port, `steady-${i}-${shortId()}`)))
    // One QoS 0 PUBLISH per client every 5 ms: 4,000 packets/s, above the rate, one packet per read.
    await Promise.all(publishers.map((p, i) => new Promise<void>((resolve) => {
      let n = 0
      const timer = setInterval(() => {
        const payload = Buffer.alloc(8)
        payload.writeUInt32BE(i, 0)
        payload.writeUInt32BE(n, 4)
        p.send(generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }))
        if (++n === EACH) {
          clearInterval(timer)
          resolve()
        }
      }, 5)
    })))
    const messages = (await seen.waitFor(firstSeen + CLIENTS * EACH, SLOW)).slice(firstSeen)
    for (let i = 0; i < CLIENTS; i++) {
      expect(messages.filter((m) => m.payload.readUInt32BE(0) === i).map((m) => m.payload.readUInt32BE(4))).toEqual(Array.from({ length: EACH }, (_, n) => n))
    }
    for (const p of publishers) p.destroy()
    expect(await moat.metric('moat_coalescing_backoffs_total{reason="not_gathering"}')).toBeGreaterThan(0)
    // The other reason is a series of its own (a trial found the waits dearer), shown even at 0.
    expect(Number.isFinite(await moat.metric('moat_coalescing_backoffs_total{reason="dearer"}'))).toBe(true)
  }, SLOW)

  it('below the rate, no turn waits', async () => {
    const moat = await MoatProcess.start(dir, 'below.yaml', config({ wait: '300us', above: '10000000/s' }))
    running.push(moat)
    await flood(moat.port)
    expect(await moat.metric('moat_coalescing_waits_total')).toBe(0)
    expect(await moat.metric('moat_coalescing_wait_seconds_total')).toBe(0)
  }, SLOW)

  it('wait: 0 never waits, at any rate; a reload to a wait turns it on', async () => {
    const file = 'reload.yaml'
    const moat = await MoatProcess.start(dir, file, config({ wait: 0, above: '1/s' }))
    running.push(moat)
    await flood(moat.port)
    expect(await moat.metric('moat_coalescing_waits_total')).toBe(0)

    writeFileSync(join(dir, file), JSON.stringify(config({ wait: '200us', above: '1/s' })))
    moat.signal('SIGHUP')
    await moat.waitForLog((l) => l.event === 'config_reload' && l.outcome === 'success', SLOW)
    await flood(moat.port)
    expect(await moat.metric('moat_coalescing_waits_total')).toBeGreaterThan(0)
  }, SLOW)

  it('workers: 2 coalesce each in its own process, and /metrics sums their waits', async () => {
    const file = join(dir, 'workers.yaml')
    writeFileSync(file, JSON.stringify(config({ wait: '300us', above: '1000/s' }, { workers: 2 })))
    const moat = await MoatCluster.start(file)
    running.push(moat)
    await expect.poll(() => moat.all({ event: 'listening', listener: 'edge' }).length, { timeout: SLOW }).toBe(2)
    await flood(moat.port('edge'))
    expect(await moat.value('moat_coalescing_waits_total')).toBeGreaterThan(0)
  }, SLOW)
})
