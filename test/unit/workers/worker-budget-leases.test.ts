/**
 * Per-user rate leases between a worker and its primary (workers/worker-budget-leases.ts,
 * workers/lease-host.ts) over an in-memory channel pair that delivers asynchronously, like IPC: a
 * renewal granted from the primary's buckets, a long name hashed before it is sent, malformed calls
 * granted nothing, a primary that does not answer making the loop fall back (logged once, counted).
 * The real processes are in test/integration/workers-user-rates.test.ts.
 */
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { LeaseLoop } from '../../../src/fleet/lease-loop.js'
import { BucketSpec, ExcessAction, nowMs, TokenBucket } from '../../../src/limits/token-bucket.js'
import { ClusterStats, storeOpIndex } from '../../../src/stats/fleet-stats.js'
import { LeaseHost } from '../../../src/workers/lease-host.js'
import type { Logger } from '../../../src/log/logger.js'
import type { Channel } from '../../../src/workers/messages.js'
import { WorkerLeaseTransport } from '../../../src/workers/worker-budget-leases.js'

/** Two ends of a channel: what one sends, the other hears on a later turn (a JSON copy), unless muted. */
function channelPair(): { worker: Channel; primary: Channel; mute: (on: boolean) => void } {
  const a = new EventEmitter()
  const b = new EventEmitter()
  let muted = false
  const end = (to: EventEmitter, self: EventEmitter): Channel => ({
    send: (message, callback) => {
      const copy = JSON.parse(JSON.stringify(message)) as unknown
      setImmediate(() => { if (!muted) to.emit('message', copy) })
      callback(null)
      return true
    },
    on: (event, listener) => self.on(event, listener),
    off: (event, listener) => self.off(event, listener),
  })
  return { worker: end(b, a), primary: end(a, b), mute: (on) => { muted = on } }
}

function logged(): { lines: Array<Record<string, unknown>>; logger: Logger } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { lines, logger: pino({ level: 'info' }, sink) }
}

/** A message bucket of 100/s, burst 100 ms (10 messages). */
function bucket(): TokenBucket {
  return new TokenBucket(new BucketSpec({ count: 100, perMs: 1000 }, 100), ExcessAction.Drop, false, nowMs())
}

/**
 * A worker leasing for alice from a primary that answers within 50 ms, then goes silent once alice
 * has spent 5 (the next renewal times out).
 */
async function silentPrimary(): Promise<{ host: LeaseHost; lines: Array<Record<string, unknown>>; stats: ClusterStats; loop: LeaseLoop; b: TokenBucket; mute: (on: boolean) => void }> {
  const { worker, primary, mute } = channelPair()
  const host = new LeaseHost(100)
  host.attach(primary)
  const { lines, logger } = logged()
  const stats = new ClusterStats()
  const loop = new LeaseLoop(new WorkerLeaseTransport(worker, 50), logger, stats)
  const table = loop.open()
  await loop.renew()
  const b = bucket()
  table.track('alice', [b], ['m'], nowMs())
  mute(true)
  b.take(5)
  return { host, lines, stats, loop, b, mute }
}

describe('leases from the cluster primary', () => {
  it('charges the advance and grants a lease from the primary\'s buckets; a long name is hashed before it is sent', async () => {
    const { worker, primary } = channelPair()
    const host = new LeaseHost(100)
    host.attach(primary)
    const stats = new ClusterStats()
    const loop = new LeaseLoop(new WorkerLeaseTransport(worker), pino({ level: 'silent' }), stats)
    const table = loop.open()
    await loop.renew()
    expect(loop.fleetWide).toBe(true)
    const b = bucket()
    const long = 'u'.repeat(5000)
    table.track(long, [b], ['m'], nowMs())
    for (let i = 0; i < 10; i++) b.take(1)
    await loop.renew()
    expect(b.credits).toBeGreaterThan(0)
    expect(host.buckets.size).toBe(1)
    expect(stats.calls[storeOpIndex.rate_leases]).toBe(1) // the first renewal had nothing to say
    expect(stats.rateLeaseFallbacks).toBe(0)
    await loop.close()
    host.close()
  })

  it('grants nothing to a malformed call, and still answers the rest of the renewal', async () => {
    const { worker, primary } = channelPair()
    const host = new LeaseHost(100)
    host.attach(primary)
    const grants = new Promise<unknown>((resolve) => worker.on('message', resolve))
    const bad = [
      { key: 'm:x', capacity: -1, refill: 1, debt: 0, delta: 5 },
      { key: 'm:y', capacity: 1000, refill: 0, debt: 0, delta: 5 },
      { key: 'm:z', capacity: 1000, refill: 1, debt: -50, delta: 5 },
      { key: 'm:' + 'v'.repeat(300), capacity: 1000, refill: 1, debt: 0, delta: 5 },
      { key: 'm:w', capacity: 1000, refill: 1, debt: 0, delta: Number.NaN },
      null,
      { key: 'm:ok', capacity: 1000, refill: 1, debt: 0, delta: 5 },
    ]
    worker.send({ moat: 'leases', id: 7, calls: bad }, () => {})
    expect(await grants).toEqual({ moat: 'lease-grants', id: 7, grants: [0, 0, 0, 0, 0, 0, 5] })
    expect(host.buckets.size).toBe(1)
    host.close()
  })

  it('falls back to per-worker buckets when the primary does not answer in time: logged once, counted; leases again once it answers', async () => {
    const { host, lines, stats, loop, b, mute } = await silentPrimary()
    await loop.renew() // times out after 50 ms
    expect(loop.fleetWide).toBe(false)
    expect(b.leased).toBe(false) // refills by itself again: the per-worker rate
    b.take(1)
    await loop.renew() // not retried before a second has passed: no second line
    expect(stats.rateLeaseFallbacks).toBe(1)
    expect(lines.filter((l) => l.event === 'user_rate_leases' && l.outcome === 'local')).toHaveLength(1)
    expect(lines.find((l) => l.outcome === 'local')).toMatchObject({ source: 'the cluster primary' })
    mute(false)
    await expect.poll(async () => {
      await loop.renew()
      return loop.fleetWide && b.leased
    }, { timeout: 5000, interval: 200 }).toBe(true)
    expect(stats.rateLeaseFallbacks).toBe(1)
    await loop.close()
    host.close()
  })

  it('a primary that stays silent over several retries costs one line and one count, not a pair per retry; its return is said once', async () => {
    const { host, lines, stats, loop, b, mute } = await silentPrimary()
    await loop.renew() // times out: per-worker buckets
    expect(loop.fleetWide).toBe(false)
    for (let retry = 0; retry < 3; retry++) {
      await new Promise((resolve) => setTimeout(resolve, 1050))
      await loop.renew() // a second on: leasing is tried again (nothing to ask yet)
      b.take(1)
      await loop.renew() // what was spent is sent: times out again
      expect(loop.fleetWide).toBe(false)
    }
    const said = (outcome: string): number => lines.filter((l) => l.event === 'user_rate_leases' && l.outcome === outcome).length
    expect(said('local')).toBe(1)
    expect(said('fleet')).toBe(1) // the first renewal's, before the primary went silent
    expect(stats.rateLeaseFallbacks).toBe(1)
    mute(false)
    // Said once the first exchange after the retry is answered.
    await expect.poll(async () => {
      b.take(1)
      await loop.renew()
      return said('fleet')
    }, { timeout: 5000, interval: 200 }).toBe(2)
    expect(loop.fleetWide && b.leased).toBe(true)
    expect(said('local')).toBe(1)
    expect(stats.rateLeaseFallbacks).toBe(1)
    await loop.close()
    host.close()
  })
})
