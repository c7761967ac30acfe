/**
 * Every input in test/fuzz/corpus/ — inputs that slipped something past Moat or broke it during
 * development (each file says what it found and where it was fixed) — replayed against a live Moat
 * in front of the recording upstream: Moat closes the client for the recorded reason, and the
 * upstream received nothing ungrammatical or forbidden.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CloseReason } from '../../src/stats/reasons.js'
import { RawClient } from '../helpers/clients.js'
import { startTarget, type LiveTarget } from './engine.js'

interface CorpusEntry {
  found: string
  chunks: string[]
  reason: CloseReason
  /** The input never gets past CONNECT: the broker must not even be dialled. */
  beforeConnect?: boolean
}

const dir = join(import.meta.dirname, 'corpus')
const entries = readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((file) => ({ file, entry: JSON.parse(readFileSync(join(dir, file), 'utf8')) as CorpusEntry }))

describe('fuzz corpus: regression inputs', () => {
  let target: LiveTarget

  beforeAll(async () => {
    target = await startTarget()
  })
  afterAll(async () => {
    await target?.stop()
  })

  it('holds at least one entry', () => {
    expect(entries.length).toBeGreaterThan(0)
  })

  for (const { file, entry } of entries) {
    it(`${file.replace(/\.json$/, '')}: closed for ${entry.reason}, nothing bad upstream`, async () => {
      const closedBefore = target.moat.stats.closedFor(entry.reason)
      const accepted = target.upstream.accepted
      const violations = target.upstream.violations.length
      const raw = new RawClient(target.moat.address().port, 5)
      await raw.connected()
      for (const hex of entry.chunks) {
        raw.send(Buffer.from(hex, 'hex'))
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
      // Moat closes it by itself: the test never ends its side.
      await raw.closed
      expect(target.moat.stats.closedFor(entry.reason)).toBe(closedBefore + 1)
      expect(target.upstream.violations.slice(violations)).toEqual([])
      if (entry.beforeConnect === true) expect(target.upstream.accepted).toBe(accepted)
      else expect(target.upstream.accepted).toBe(accepted + 1)
      await expect.poll(() => target.upstream.openConnections, { timeout: 5000 }).toBe(0)
    })
  }
})
