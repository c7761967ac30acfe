import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CacheKeyHasher } from '../../../src/auth/cache-key.js'

const fields = (username: string, password: string): string => JSON.stringify([username, Buffer.from(password).toString('base64')])

describe('CacheKeyHasher', () => {
  it('is SHA-256 over the secret, then the fields as UTF-8', () => {
    const secret = randomBytes(32)
    const hasher = new CacheKeyHasher(secret)
    for (const f of [fields('alice', 'pw'), '', 'é€😀'.repeat(5), 'x'.repeat(1365), 'x'.repeat(1366), 'é'.repeat(3000), '😀'.repeat(20_000)]) {
      expect(hasher.keyOf(f)).toBe(createHash('sha256').update(secret).update(f, 'utf8').digest('base64'))
    }
  })

  it('gives the same key for the same fields, and another for other fields (a password that only starts alike too)', () => {
    const hasher = new CacheKeyHasher()
    expect(hasher.keyOf(fields('alice', 'secret'))).toBe(hasher.keyOf(fields('alice', 'secret')))
    expect(hasher.keyOf(fields('alice', 'secret'))).not.toBe(hasher.keyOf(fields('alice', 'secret2')))
    expect(hasher.keyOf(fields('alice', 'secret'))).not.toBe(hasher.keyOf(fields('alic', 'esecret')))
    // A long field hashed in its own buffer, then a short one in the scratch again: nothing left over.
    const long = 'y'.repeat(10_000)
    const before = hasher.keyOf(fields('bob', 'pw'))
    hasher.keyOf(long)
    expect(hasher.keyOf(fields('bob', 'pw'))).toBe(before)
  })

  it('depends on the secret: another process (another secret) has other keys, and an unkeyed hash of the fields is not one', () => {
    const f = fields('alice', 'secret')
    const a = new CacheKeyHasher().keyOf(f)
    expect(new CacheKeyHasher().keyOf(f)).not.toBe(a)
    expect(a).not.toBe(createHash('sha256').update(f).digest('base64'))
    expect(a).not.toContain(Buffer.from('secret').toString('base64'))
  })

  it('refuses a secret of the wrong size', () => {
    expect(() => new CacheKeyHasher(randomBytes(16))).toThrow(/32 bytes/)
  })
})
