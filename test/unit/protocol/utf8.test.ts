import { isUtf8 } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import { isRefusedString } from '../../../src/protocol/utf8.js'

/** The broker's rule stated on code points, independently of the byte-level scanner under test. */
function refusedCodePoint(cp: number): boolean {
  return cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe
}
function reference(bytes: Buffer): boolean {
  if (!isUtf8(bytes)) return true
  for (const ch of bytes.toString('utf8')) if (refusedCodePoint(ch.codePointAt(0)!)) return true
  return false
}
const refused = (bytes: Buffer | number[]): boolean => {
  const buf = Buffer.from(bytes)
  return isRefusedString(buf, 0, buf.length)
}

describe('isRefusedString: the broker\'s UTF-8 rule', () => {
  it('accepts ASCII text, multi-byte text and the empty string', () => {
    expect(refused(Buffer.from('sensors/room-1/temp'))).toBe(false)
    expect(refused(Buffer.from('héllo 世界 🌍 \u00a0\ufffd'))).toBe(false)
    expect(refused([])).toBe(false)
  })

  it('agrees with the code-point statement of the rule for every code point', () => {
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue // not encodable: surrogates are covered below
      const buf = Buffer.from(String.fromCodePoint(cp))
      if (isRefusedString(buf, 0, buf.length) !== refusedCodePoint(cp)) expect.fail(`U+${cp.toString(16)}`)
    }
  })

  it.each([
    ['U+0000', [0x61, 0x00]],
    ['U+0001', [0x01]],
    ['U+001F', [0x1f]],
    ['U+007F', [0x7f]],
    ['U+0080 (C1)', [0xc2, 0x80]],
    ['U+009F (C1)', [0xc2, 0x9f]],
    ['U+FDD0', [0xef, 0xb7, 0x90]],
    ['U+FDEF', [0xef, 0xb7, 0xaf]],
    ['U+FFFE', [0xef, 0xbf, 0xbe]],
    ['U+FFFF', [0xef, 0xbf, 0xbf]],
    ['U+1FFFE', [0xf0, 0x9f, 0xbf, 0xbe]],
    ['U+10FFFF', [0xf4, 0x8f, 0xbf, 0xbf]],
    ['a surrogate U+D800', [0xed, 0xa0, 0x80]],
    ['overlong "/" (C0 AF)', [0xc0, 0xaf]],
    ['overlong U+0000 (C0 80)', [0xc0, 0x80]],
    ['overlong three-byte form', [0xe0, 0x80, 0xaf]],
    ['overlong four-byte form', [0xf0, 0x80, 0x80, 0xaf]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['lead byte F5', [0xf5, 0x80, 0x80, 0x80]],
    ['lead byte FF', [0xff]],
    ['a stray continuation byte', [0x61, 0x80]],
    ['a truncated sequence', [0xe4, 0xb8]],
    ['a sequence cut by ASCII', [0xe4, 0x61, 0x96]],
  ])('refuses %s', (_name, bytes) => expect(refused(bytes)).toBe(true))

  it('agrees with the reference on random byte strings', () => {
    let seed = 7
    const random = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000
    for (let n = 0; n < 20000; n++) {
      const length = 1 + Math.floor(random() * 6)
      // Mostly bytes that make sequences: leads, continuations and printable ASCII.
      const pool = [0x41, 0x2f, 0x7f, 0x00, 0x1f, 0x80, 0x8f, 0x9f, 0xa0, 0xbf, 0xbe, 0xb7, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5]
      const bytes = Buffer.from(Array.from({ length }, () => random() < 0.5 ? pool[Math.floor(random() * pool.length)]! : Math.floor(random() * 256)))
      if (isRefusedString(bytes, 0, bytes.length) !== reference(bytes)) expect.fail(bytes.toString('hex'))
    }
  })

  it('checks only the given range', () => {
    const buf = Buffer.from([0x01, 0x61, 0x62, 0xff])
    expect(isRefusedString(buf, 1, 3)).toBe(false)
    // A sequence that would run past the end of the range is truncated, even if the buffer goes on.
    const cut = Buffer.from('a世')
    expect(isRefusedString(cut, 0, cut.length - 1)).toBe(true)
  })
})
