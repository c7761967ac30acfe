/**
 * The admin endpoint, scraped for real: /metrics counts what happened (by bounded labels),
 * /healthz answers, /readyz follows the broker's reachability.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

describe('admin endpoint', () => {
  let broker: TestBroker
  let moat: Moat
  let admin: string

  beforeAll(async () => {
    broker = await startBroker('aedes')
    moat = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0 } })
    admin = `http://127.0.0.1:${moat.adminAddress()!.port}`
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  /** The value of one sample in Prometheus text, e.g. metric('moat_packets_total{direction="client_to_broker",packet_type="publish"}'). */
  async function metric(sample: string): Promise<number> {
    const text = await (await fetch(`${admin}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith(sample + ' '))
    return line === undefined ? 0 : Number(line.slice(sample.length + 1))
  }

  it('answers /healthz and /readyz while the broker is reachable', async () => {
    const health = await fetch(`${admin}/healthz`)
    expect(health.status).toBe(200)
    const ready = await fetch(`${admin}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.text()).toBe('ready\n')
  })

  it('counts connections, packets by type and direction, and closes by reason', async () => {
    const accepted = await metric('moat_connections_accepted_total{listener="mqtt"}')
    const publishes = await metric('moat_packets_total{direction="client_to_broker",packet_type="publish"}')
    const violations = await metric('moat_sessions_closed_total{reason="forbidden_packet_type"}')

    const client = await connect(moat.address().port)
    await client.publishAsync(uid('m'), 'x', { qos: 1 })
    await client.publishAsync(uid('m'), 'y', { qos: 1 })
    const bad = await rawSession(moat.address().port, uid('bad'))
    bad.send(Buffer.from([0x20, 0x02, 0x00, 0x00])) // CONNACK from a client
    await bad.closed

    expect(await metric('moat_connections_accepted_total{listener="mqtt"}')).toBe(accepted + 2)
    expect(await metric('moat_packets_total{direction="client_to_broker",packet_type="publish"}')).toBe(publishes + 2)
    expect(await metric('moat_packets_total{direction="broker_to_client",packet_type="puback"}')).toBeGreaterThanOrEqual(2)
    expect(await metric('moat_sessions_closed_total{reason="forbidden_packet_type"}')).toBe(violations + 1)
    expect(await metric('moat_sessions_open')).toBeGreaterThanOrEqual(1)
    expect(await metric('moat_upstream_connects_total')).toBeGreaterThanOrEqual(2)
    await client.endAsync()
  })

  it('never labels a metric with a client id or a topic', async () => {
    const id = uid('secret-client')
    const client = await connect(moat.address().port, { clientId: id })
    await client.publishAsync(`${id}/topic`, 'x', { qos: 1 })
    const text = await (await fetch(`${admin}/metrics`)).text()
    expect(text).not.toContain(id)
    expect(text).toMatch(/^process_cpu_seconds_total /m)
    await client.endAsync()
  })

  it('serves OpenMetrics to a scraper that asks for it, and the text format otherwise', async () => {
    const open = await fetch(`${admin}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5' } })
    expect(open.headers.get('content-type')).toMatch(/^application\/openmetrics-text; version=1\.0\.0/)
    const body = await open.text()
    expect(body.trimEnd().endsWith('# EOF')).toBe(true)
    expect(body).toMatch(/^# TYPE moat_sessions_open gauge$/m)
    const plain = await fetch(`${admin}/metrics`)
    expect(plain.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await plain.text()).not.toMatch(/# EOF/)
  })

  it('serves text and OpenMetrics in any order, one after the other or at once, with the same names', async () => {
    const OPEN = 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5'
    const scrape = async (format: 'text' | 'openmetrics'): Promise<string> =>
      (await fetch(`${admin}/metrics`, format === 'text' ? {} : { headers: { accept: OPEN } })).text()
    /** Moat's sample names (Node's come and go with what the process is doing), and every family's declared name and type. */
    const names = (body: string): { samples: string[]; families: string[] } => {
      const lines = body.split('\n').filter((l) => l !== '' && l !== '# EOF')
      return {
        samples: [...new Set(lines.filter((l) => l.startsWith('moat_')).map((l) => l.slice(0, l.search(/[{ ]/))))].sort(),
        families: lines.filter((l) => l.startsWith('# TYPE ')).sort(),
      }
    }
    const text = names(await scrape('text'))
    const open = names(await scrape('openmetrics'))
    expect(text.samples).toContain('moat_config_reloads_total')
    expect(text.families).toContain('# TYPE moat_config_reloads_total counter')
    // OpenMetrics declares a counter family without `_total`; its samples keep it, as in text.
    expect(open.families).toContain('# TYPE moat_config_reloads counter')
    expect(open.samples).toEqual(text.samples)
    expect(open.families).toEqual(text.families.map((l) => l.replace(/^(# TYPE \S+)_total counter$/, '$1 counter')).sort())
    for (const order of [['openmetrics', 'text', 'openmetrics', 'text'], ['text', 'openmetrics', 'text', 'openmetrics']] as const) {
      for (const format of order) expect(names(await scrape(format))).toEqual(format === 'text' ? text : open)
    }
    const together = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'text' : 'openmetrics') as 'text' | 'openmetrics').map(async (format) => ({ format, body: await scrape(format) })))
    for (const { format, body } of together) expect(names(body)).toEqual(format === 'text' ? text : open)
    // The registry the scrapes read is not changed by them.
    expect((await moat.registry.getMetricsAsJSON()).map((m) => m.name)).toContain('moat_config_reloads_total')
  })

  it('exports the running policy as an info metric: its hash changes with the policy', async () => {
    const text = await (await fetch(`${admin}/metrics`)).text()
    const match = /^moat_policy_info\{hash="([0-9a-f]{16})",generation="(\d+)"\} 1$/m.exec(text)
    expect(match).not.toBeNull()
    expect(match![1]).toBe(moat.policy.hash)
  })

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    expect((await fetch(`${admin}/nope`)).status).toBe(404)
    expect((await fetch(`${admin}/metrics`, { method: 'POST' })).status).toBe(405)
  })

  it('reports not ready once the broker is gone', async () => {
    await broker.stop()
    await expect.poll(async () => (await fetch(`${admin}/readyz`)).status, { timeout: 5000 }).toBe(503)
    expect(await (await fetch(`${admin}/readyz`)).text()).toBe('not ready: broker unreachable\n')
  })
})
