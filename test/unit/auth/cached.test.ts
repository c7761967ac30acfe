import { describe, expect, it } from 'vitest'
import { ALLOW, DENY, type AuthBackend, type AuthRequest, type AuthResult } from '../../../src/auth/backend.js'
import { cached } from '../../../src/auth/cached.js'
import { AuthStats } from '../../../src/stats/auth-stats.js'

const req = (username: string, password: string): AuthRequest => ({
  username, password: Buffer.from(password), clientId: 'c', remoteAddress: '1.1.1.1', listener: 'l', transport: 'tcp', protocolVersion: 4, certificate: null,
})

function counting(answer: (r: AuthRequest) => AuthResult | Error): AuthBackend & { calls: number; release: () => void } {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const backend = {
    type: 'http' as const,
    calls: 0,
    release: () => release(),
    async authenticate(r: AuthRequest): Promise<AuthResult> {
      backend.calls++
      await gate
      const a = answer(r)
      if (a instanceof Error) throw a
      return a
    },
  }
  return backend
}

describe('cached()', () => {
  it('coalesces concurrent lookups of the same credentials into one backend call', async () => {
    const inner = counting(() => ALLOW)
    const c = cached(inner, { ttlMs: 60_000, negativeTtlMs: 1000, max: 10 }, new AuthStats())
    const pending = [1, 2, 3, 4].map(() => c.authenticate(req('a', 'p'), AbortSignal.timeout(5000)))
    inner.release()
    expect(await Promise.all(pending)).toEqual([ALLOW, ALLOW, ALLOW, ALLOW])
    expect(inner.calls).toBe(1)
  })

  it('keys by the password too: other credentials are asked again', async () => {
    const inner = counting((r) => r.password!.toString() === 'p' ? ALLOW : DENY)
    inner.release()
    const c = cached(inner, { ttlMs: 60_000, negativeTtlMs: 60_000, max: 10 }, new AuthStats())
    expect(await c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))).toBe(ALLOW)
    expect(await c.authenticate(req('a', 'q'), AbortSignal.timeout(5000))).toBe(DENY)
    expect(await c.authenticate(req('a', 'q'), AbortSignal.timeout(5000))).toBe(DENY)
    expect(inner.calls).toBe(2)
  })

  it('keeps an allow no longer than its validUntil (a token expiring before the TTL)', async () => {
    const inner = counting(() => ({ outcome: 'allow', validUntil: Date.now() + 30 }))
    inner.release()
    const c = cached(inner, { ttlMs: 60_000, negativeTtlMs: 60_000, max: 10 }, new AuthStats())
    await c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))
    await c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))
    expect(inner.calls).toBe(1)
    await expect.poll(async () => {
      await c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))
      return inner.calls
    }).toBe(2)
  })

  it('never caches a failure', async () => {
    let fail = true
    const inner = counting(() => fail ? new Error('down') : ALLOW)
    inner.release()
    const c = cached(inner, { ttlMs: 60_000, negativeTtlMs: 60_000, max: 10 }, new AuthStats())
    await expect(c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))).rejects.toThrow('down')
    fail = false
    expect(await c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))).toBe(ALLOW)
    expect(inner.calls).toBe(2)
  })

  it('answerNow: a fresh cached answer at once, nothing for a miss, an expired entry or a lookup in flight', async () => {
    const inner = counting((r) => r.password!.toString() === 'p' ? { outcome: 'allow', validUntil: Date.now() + 40 } : DENY)
    const stats = new AuthStats()
    const c = cached(inner, { ttlMs: 60_000, negativeTtlMs: 60_000, max: 10 }, stats)
    expect(c.answerNow!(req('a', 'p'))).toBeUndefined() // never asked
    const pending = c.authenticate(req('a', 'p'), AbortSignal.timeout(5000))
    expect(c.answerNow!(req('a', 'p'))).toBeUndefined() // in flight: authenticate() joins it
    inner.release()
    const allow = await pending
    expect(c.answerNow!(req('a', 'p'))).toBe(allow)
    expect(c.answerNow!(req('a', 'q'))).toBeUndefined() // other credentials: another key
    expect(await c.authenticate(req('a', 'q'), AbortSignal.timeout(5000))).toBe(DENY)
    expect(c.answerNow!(req('a', 'q'))).toBe(DENY)
    expect(inner.calls).toBe(2)
    // hits counted (two answerNow), misses counted by authenticate (two)
    const [hits, misses] = stats.cache.reduce(([h, m], n, i) => i % 2 === 0 ? [h + n, m] : [h, m + n], [0, 0])
    expect([hits, misses]).toEqual([2, 2])
    await expect.poll(() => c.answerNow!(req('a', 'p'))).toBeUndefined() // past its validUntil
  })
})
