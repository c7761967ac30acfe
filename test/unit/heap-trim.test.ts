/**
 * After a wave of sessions has gone, one full collection gives the garbage they left back; not
 * while most are still open, not for a handful leaving, not when the heap has not grown.
 */
import v8 from 'node:v8'
import { describe, expect, it } from 'vitest'
import { HeapTrim } from '../../src/heap-trim.js'
import { createLogger } from '../../src/log/logger.js'
import { Writable } from 'node:stream'

const MiB = 1024 * 1024

function recordingLogger(): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const out = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); done() } })
  return { logger: createLogger('info', out), lines }
}

/** Leaves about `mib` MiB of garbage that has lived long enough to reach the old generation. */
async function garbage(mib: number): Promise<void> {
  let kept: object[] = []
  for (let i = 0; i < mib * 8; i++) {
    kept.push(Array.from({ length: 1000 }, (_, j) => ({ j, s: `s${j}` })))
    if (i % 64 === 63) await new Promise((resolve) => setImmediate(resolve))
  }
  kept = []
  expect(kept).toHaveLength(0)
}

const options = { intervalMs: 3_600_000, minDrop: 100, minGrowthBytes: 8 * MiB }

describe('HeapTrim', () => {
  it('collects once the open sessions fell to half of their peak, by at least minDrop, and the heap grew', async () => {
    let open = 0
    const { logger, lines } = recordingLogger()
    const trim = new HeapTrim(() => open, logger, options)
    try {
      expect(trim.enabled).toBe(true)
      for (open = 1; open <= 1000; open++) trim.noteOpen(open)
      await garbage(64)
      open = 600 // more than half still open
      expect(trim.check()).toBe(false)
      open = 10
      const before = v8.getHeapStatistics().used_heap_size
      expect(trim.check()).toBe(true)
      expect(trim.collections).toBe(1)
      expect(v8.getHeapStatistics().used_heap_size).toBeLessThan(before - 16 * MiB)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ level: 'info', event: 'heap_trim', sessions: 10, sessionsPeak: 1000 })
      // The peak is now the sessions open at the collection: nothing more to give back.
      expect(trim.check()).toBe(false)
    } finally {
      trim.stop()
    }
  })

  it('does not collect for a handful of sessions leaving, however large the heap', async () => {
    let open = 50
    const trim = new HeapTrim(() => open, recordingLogger().logger, options)
    try {
      trim.noteOpen(50)
      await garbage(32)
      open = 0 // all gone, but 50 < minDrop
      expect(trim.check()).toBe(false)
      expect(trim.collections).toBe(0)
    } finally {
      trim.stop()
    }
  })

  it('does not collect when the heap has not grown since the last collection', () => {
    let open = 0
    const trim = new HeapTrim(() => open, recordingLogger().logger, { ...options, minGrowthBytes: 1024 * MiB })
    try {
      trim.noteOpen(5000)
      open = 0
      expect(trim.check()).toBe(false)
    } finally {
      trim.stop()
    }
  })
})
