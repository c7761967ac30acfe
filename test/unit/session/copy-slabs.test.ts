/**
 * The copy slabs of a RunWriter: copies packed into a slab, a slab used again only once every copy
 * in it was written (write callbacks come in write order), nothing held once all is written.
 */
import { describe, expect, it } from 'vitest'
import { CopySlabs } from '../../../src/session/copy-slabs.js'

function source(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

describe('CopySlabs', () => {
  it('takes copies larger than Buffer’s pool serves and no larger than a slab', () => {
    expect(CopySlabs.takes(4096)).toBe(false)
    expect(CopySlabs.takes(4097)).toBe(true)
    expect(CopySlabs.takes(64 * 1024)).toBe(true)
    expect(CopySlabs.takes(64 * 1024 + 1)).toBe(false)
  })

  it('packs copies one after another, each holding exactly its bytes', () => {
    const slabs = new CopySlabs()
    const a = source(10_000, 1)
    const b = source(20_000, 2)
    const ca = slabs.copy(a, 100, 9_000)
    const cb = slabs.copy(b, 0, 20_000)
    expect(ca.equals(a.subarray(100, 9_000))).toBe(true)
    expect(cb.equals(b)).toBe(true)
    expect(cb.buffer).toBe(ca.buffer)
    expect(cb.byteOffset).toBe(ca.byteOffset + ca.length)
  })

  it('a copy that does not fit goes to a new slab; the old one is reused only once all its copies are written', () => {
    const slabs = new CopySlabs()
    const big = source(40_000, 3)
    const first = slabs.copy(big, 0, 40_000)
    const second = slabs.copy(big, 0, 30_000) // 70,000 > 64 KiB: a second slab
    expect(second.buffer).not.toBe(first.buffer)
    slabs.written() // the first copy is written: its slab becomes the spare
    const third = slabs.copy(big, 0, 40_000) // does not fit behind the second: the spare is used
    expect(third.buffer).toBe(first.buffer)
    expect(third.equals(big)).toBe(true)
    expect(second.equals(big.subarray(0, 30_000))).toBe(true) // still in flight, untouched
  })

  it('a slab with copies in flight is never written over', () => {
    const slabs = new CopySlabs()
    const data = source(30_000, 4)
    const kept = [slabs.copy(data, 0, 30_000), slabs.copy(data, 0, 30_000)]
    // Neither is written yet: a third copy must go elsewhere, whatever fits.
    const third = slabs.copy(source(30_000, 5), 0, 30_000)
    expect(third.buffer).not.toBe(kept[0]!.buffer)
    for (const k of kept) expect(k.equals(data)).toBe(true)
  })

  it('once everything is written it holds no slab, and the next copy starts a new one', () => {
    const slabs = new CopySlabs()
    const data = source(8_000, 6)
    const first = slabs.copy(data, 0, 8_000)
    slabs.written()
    const next = slabs.copy(data, 0, 8_000)
    expect(next.buffer).not.toBe(first.buffer)
    expect(next.byteOffset).toBe(0)
  })

  it('after drop, late callbacks change nothing', () => {
    const slabs = new CopySlabs()
    const data = source(8_000, 7)
    slabs.copy(data, 0, 8_000)
    slabs.drop()
    slabs.written()
    slabs.written()
    const again = slabs.copy(data, 0, 8_000)
    expect(again.equals(data)).toBe(true)
  })

  it('test runs (MOAT_POISON_LENT_READS=1) overwrite a slab’s bytes once written, so a copy used too early shows', () => {
    expect(process.env.MOAT_POISON_LENT_READS).toBe('1')
    const slabs = new CopySlabs()
    const view = slabs.copy(source(8_000, 8), 0, 8_000)
    slabs.copy(source(8_000, 9), 0, 8_000)
    slabs.written()
    slabs.written()
    expect(view.every((b) => b === 0xee)).toBe(true)
  })
})
