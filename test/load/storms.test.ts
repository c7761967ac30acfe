/**
 * Load: storms against Moat (in its own process) on loopback, each stopping by itself, while a
 * well-behaved client keeps round-tripping through the same Moat:
 *
 * - a connect/disconnect storm: sessions come back to none, and memory (V8 heap after a full GC)
 *   returns to where it was;
 * - a slowloris of partial CONNECTs: every one is closed by the CONNECT timeout, counted, and the
 *   broker never sees one;
 * - a subscribe storm: every SUBSCRIBE answered.
 *
 * Prints the rates and the honest client's round trips (p50/p99/max) during each; asserts the
 * functional properties and a generous sanity bound on the round trip (2 s). Speed figures for a
 * quiet machine come from `npm run bench:load`, not from these assertions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectStorm, describeRoundTrips, MiB, MoatChild, Prober, slowloris, subscribeStorm, type RoundTrips } from '../../bench/load-harness.js'
import { brokerKinds } from '../helpers/broker.js'
import { startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

const CONNECT_TIMEOUT_MS = 2000

function expectResponsive(r: RoundTrips): void {
  expect(r.count).toBeGreaterThan(0)
  expect(r.lost).toBe(0)
  expect(r.max).toBeLessThan(2000)
}

describe.runIf(brokerKinds().includes('mosquitto') && process.platform === 'linux')('load: storms', () => {
  let broker: MosquittoProcess
  let moat: MoatChild
  let prober: Prober
  beforeAll(async () => {
    broker = await startMosquitto({ quiet: true }) // connection lines only: they show the broker saw no slowloris connection
    moat = await MoatChild.start(broker, `{ connectTimeout: ${CONNECT_TIMEOUT_MS}ms }`)
    prober = await Prober.start(moat.port)
    await prober.waitForProbes(3)
  })
  afterAll(async () => {
    await prober?.stop()
    await moat?.stop()
    await broker?.stop()
  })

  it('connect/disconnect storm: every cycle completes, sessions and memory come back, the honest client keeps round-tripping', async () => {
    const before = await moat.snapshot(true)
    prober.cut()
    const storm = await connectStorm(moat.port, 5, 20)
    const during = prober.cut()
    console.log(`connect storm: ${storm.cycles} connect/CONNACK/DISCONNECT cycles in ${storm.seconds.toFixed(1)} s = ${(storm.cycles / storm.seconds).toFixed(0)}/s with 20 workers; ${describeRoundTrips(during)} [busy machine]`)
    expect(storm.failures).toBe(0)
    expect(storm.cycles).toBeGreaterThan(0)
    expectResponsive(during)
    await expect.poll(async () => (await moat.snapshot()).sessions, { timeout: 10_000 }).toBe(1)
    const after = await moat.snapshot(true)
    console.log(`connect storm: Moat V8 heap after a full GC ${(before.heapUsed / MiB).toFixed(1)} → ${(after.heapUsed / MiB).toFixed(1)} MiB; resident ${(before.rss / MiB).toFixed(0)} → ${(after.rss / MiB).toFixed(0)} MiB`)
    // Memory returns: what stays after thousands of sessions is noise, not a per-session leak.
    expect(after.heapUsed - before.heapUsed).toBeLessThan(8 * MiB)
    expect(after.closed.client_disconnect - before.closed.client_disconnect).toBe(storm.cycles)
  }, 60_000)

  it('slowloris of partial CONNECTs: every one closed by the CONNECT timeout, counted; the broker sees none; the honest client keeps round-tripping', async () => {
    const COUNT = 2000
    const before = await moat.snapshot()
    const brokerConnections = broker.logs.filter((l) => /^New connection from /.test(l)).length
    prober.cut()
    const result = await slowloris(moat.port, COUNT)
    const during = prober.cut()
    console.log(`slowloris: ${COUNT} partial CONNECTs all closed by Moat ${(result.lastClosedAfterMs / 1000).toFixed(1)} s after the first was opened (connectTimeout ${CONNECT_TIMEOUT_MS} ms); ${describeRoundTrips(during)} [busy machine]`)
    expect(result.closed).toBe(COUNT)
    expectResponsive(during)
    const after = await moat.snapshot()
    expect(after.closed.connect_timeout - before.closed.connect_timeout).toBe(COUNT)
    await expect.poll(async () => (await moat.snapshot()).sessions, { timeout: 10_000 }).toBe(1)
    expect(broker.logs.filter((l) => /^New connection from /.test(l)).length).toBe(brokerConnections)
  }, 60_000)

  it('subscribe storm: every SUBSCRIBE answered; the honest client keeps round-tripping', async () => {
    const CLIENTS = 100
    const SUBSCRIBES = 10
    const FILTERS = 10
    prober.cut()
    const storm = await subscribeStorm(moat.port, CLIENTS, SUBSCRIBES, FILTERS)
    const during = prober.cut()
    console.log(`subscribe storm: ${storm.subacks} SUBSCRIBEs (${storm.filters} filters) from ${CLIENTS} clients answered in ${storm.seconds.toFixed(1)} s = ${(storm.subacks / storm.seconds).toFixed(0)} SUBSCRIBE/s, ${(storm.filters / storm.seconds).toFixed(0)} filters/s; ${describeRoundTrips(during)} [busy machine]`)
    expect(storm.subacks).toBe(CLIENTS * SUBSCRIBES)
    expectResponsive(during)
    await expect.poll(async () => (await moat.snapshot()).sessions, { timeout: 10_000 }).toBe(1)
  }, 60_000)
})
