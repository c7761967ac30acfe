/**
 * Ticket keys: derived from a seed, a listener name and the listener's TLS files, each of which
 * changes the key; and the local seeds, replaced on their period (real timers, short periods).
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { LocalTicketSeeds, SEED_BYTES, ticketKey } from '../../../src/listeners/ticket-keys.js'

describe('ticketKey', () => {
  it('is 48 bytes, the same for the same inputs, and another for another seed, listener or fingerprint', () => {
    const seed = randomBytes(SEED_BYTES)
    const files = randomBytes(32)
    const key = ticketKey(seed, 'secure', files)
    expect(key).toHaveLength(48)
    expect(ticketKey(Buffer.from(seed), 'secure', Buffer.from(files)).equals(key)).toBe(true)
    expect(ticketKey(randomBytes(SEED_BYTES), 'secure', files).equals(key)).toBe(false)
    expect(ticketKey(seed, 'secure2', files).equals(key)).toBe(false)
    expect(ticketKey(seed, 'secure', randomBytes(32)).equals(key)).toBe(false)
    // Not the seed itself: a key in hand gives back neither the seed nor another listener's key.
    expect(key.includes(seed)).toBe(false)
  })
})

describe('LocalTicketSeeds', () => {
  const seeds = new LocalTicketSeeds()
  afterEach(() => seeds.close())

  it('gives a seed at once and a new one every period', async () => {
    const got: Buffer[] = []
    seeds.watch('secure', 100, (seed) => got.push(seed))
    expect(got).toHaveLength(1)
    expect(got[0]).toHaveLength(SEED_BYTES)
    await expect.poll(() => got.length, { timeout: 2000 }).toBeGreaterThanOrEqual(3)
    expect(new Set(got.map((s) => s.toString('hex'))).size).toBe(got.length)
  })

  it('keeps the seed when watched again (a reload), and each listener has its own', () => {
    const first: Buffer[] = []
    const again: Buffer[] = []
    const other: Buffer[] = []
    seeds.watch('secure', 60_000, (seed) => first.push(seed))
    seeds.watch('secure', 30_000, (seed) => again.push(seed))
    seeds.watch('other', 60_000, (seed) => other.push(seed))
    expect(again[0]!.equals(first[0]!)).toBe(true)
    expect(other[0]!.equals(first[0]!)).toBe(false)
  })

  it('stops rotating a listener it no longer watches', async () => {
    const got: Buffer[] = []
    seeds.watch('secure', 50, (seed) => got.push(seed))
    seeds.unwatch('secure')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(got).toHaveLength(1)
  })
})
