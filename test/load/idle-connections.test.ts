/**
 * Load: 10,000 idle MQTT sessions held through Moat (in its own process), on loopback, while a
 * well-behaved client keeps round-tripping. Prints the memory per connection (resident set, and
 * V8 heap after a full GC) and the honest client's round trips; asserts that every session is
 * held, the honest client never loses a message, and (a generous sanity bound, not a speed
 * target) no round trip takes 2 s. The figures for a quiet machine: `npm run bench:load`.
 *
 * Each session holds two sockets in Moat: the child raises its own soft open-file limit as far as
 * its hard limit allows (nothing system-wide); where that is below ~20,200 the test holds as many
 * as fit and says so.
 */
import type net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeAll, idleCapacity, describeRoundTrips, MiB, MoatChild, openIdleSessions, ownFileLimit, Prober } from '../../bench/load-harness.js'
import { brokerKinds } from '../helpers/broker.js'
import { startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

const TARGET = 10_000

describe.runIf(brokerKinds().includes('mosquitto') && process.platform === 'linux')('load: idle connections', () => {
  let broker: MosquittoProcess
  let moat: MoatChild
  let prober: Prober
  beforeAll(async () => {
    broker = await startMosquitto({ quiet: true, connectionMessages: false }) // no per-connection logging: the load is Moat's
    moat = await MoatChild.start(broker)
    prober = await Prober.start(moat.port)
  })
  afterAll(async () => {
    await prober?.stop()
    await moat?.stop()
    await broker?.stop()
  })

  it(`holds ${TARGET.toLocaleString('en')} idle sessions; the honest client keeps round-tripping`, async () => {
    const count = Math.min(TARGET, idleCapacity(moat))
    if (count < TARGET) console.log(`idle: open-file limits (Moat ${moat.maxFiles}, two per session; this process ${ownFileLimit()}) fit ${count} sessions, not ${TARGET}: holding ${count}`)
    await prober.waitForProbes(3)
    prober.cut()
    const before = await moat.snapshot(true)
    const started = performance.now()
    let sockets: net.Socket[] = []
    try {
      sockets = await openIdleSessions(moat.port, count)
      const openSeconds = (performance.now() - started) / 1000
      const opening = prober.cut()
      // Held: every one of them open in Moat, with its broker connection.
      const held = await moat.snapshot() // (no forced GC here: it would stall the probes being measured)
      expect(held.sessions).toBe(count + 1)
      expect(sockets.every((s) => !s.destroyed)).toBe(true)
      // Hold them while the honest client probes on.
      await prober.waitForProbes(20)
      const holding = prober.cut()
      const after = await moat.snapshot(true)
      expect(after.sessions).toBe(count + 1)
      const rssPer = (after.rss - before.rss) / count
      const heapPer = (after.heapUsed - before.heapUsed) / count
      console.log(`idle: ${count} sessions opened in ${openSeconds.toFixed(1)} s (${(count / openSeconds).toFixed(0)}/s); Moat memory per connection: ${(rssPer / 1024).toFixed(1)} KiB resident, ${(heapPer / 1024).toFixed(1)} KiB V8 heap (rss ${(before.rss / MiB).toFixed(0)} → ${(after.rss / MiB).toFixed(0)} MiB) [busy machine]`)
      console.log(`idle: while opening: ${describeRoundTrips(opening)}`)
      console.log(`idle: while holding: ${describeRoundTrips(holding)}`)
      for (const r of [opening, holding]) {
        expect(r.lost).toBe(0)
        expect(r.max).toBeLessThan(2000)
      }
    } finally {
      await closeAll(sockets)
    }
    await expect.poll(async () => (await moat.snapshot()).sessions, { timeout: 30_000 }).toBe(1)
  }, 120_000)
})
