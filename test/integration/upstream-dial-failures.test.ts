/**
 * A broker that is down fails every client's dial: each client is told "server unavailable" and
 * each failure is counted, but the log gets one error line at once and one summary per interval
 * (or at shutdown), not a line per client.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Moat } from '../../src/moat.js'
import { brokerKinds } from '../helpers/broker.js'
import { connackCode } from '../helpers/clients.js'
import { capturingLogger } from '../helpers/listeners.js'
import { testConfig } from '../helpers/moat.js'
import { startMosquitto } from '../helpers/mosquitto.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

describe.runIf(brokerKinds().includes('mosquitto'))('failed upstream dials (mosquitto)', () => {
  it('broker stopped: 50 clients connecting are each told "server unavailable" and counted, but logged once at error, then in one summary line', async () => {
    const broker = await startMosquitto()
    cleanups.push(() => broker.stop())
    const logs: Array<Record<string, unknown>> = []
    const moat = new Moat(testConfig(broker), { logger: capturingLogger(logs) })
    await moat.start()
    cleanups.push(() => moat.shutdown(0))
    const port = moat.address().port
    expect(await connackCode(port, 4)).toBe(0) // up: a client gets in
    await broker.kill()
    expect(broker.running).toBe(false)
    const versions = Array.from({ length: 50 }, (_, n) => (n % 2 === 0 ? 4 : 5) as 4 | 5)
    const codes = await Promise.all(versions.map((v) => connackCode(port, v)))
    expect(codes).toEqual(versions.map((v) => (v === 5 ? 0x88 : 3)))
    expect(moat.stats.upstreamConnectFailures).toBe(50)
    expect(await moat.registry.getSingleMetricAsString('moat_upstream_connect_failures_total')).toMatch(/^moat_upstream_connect_failures_total 50$/m)
    expect(moat.stats.closedFor('upstream_unavailable')).toBe(50)
    const unavailable = (): Array<Record<string, unknown>> => logs.filter((l) => l.event === 'upstream_unavailable')
    expect(unavailable()).toHaveLength(1)
    expect(unavailable()[0]).toMatchObject({ level: 'error', error: expect.stringMatching(/ECONNREFUSED/) })
    // The other 49 are summed up when the interval (10 s) ends, or at shutdown at the latest.
    await moat.shutdown(0)
    expect(unavailable()).toHaveLength(2)
    expect(unavailable()[1]).toMatchObject({ level: 'error', suppressed: 49, error: expect.stringMatching(/ECONNREFUSED/) })
  })
})
