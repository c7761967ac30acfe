import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createLogger, isoTimeAt, REDACTED, redactSecrets, SECRET_KEYS } from '../../../src/log/logger.js'

function capture(): { lines: Array<Record<string, unknown>>; sink: Writable } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { lines, sink }
}

describe('log redaction', () => {
  it('censors every secret key at the top of a line and one object down, and keeps the rest', () => {
    const { lines, sink } = capture()
    const log = createLogger('info', sink)
    const top = Object.fromEntries(SECRET_KEYS.map((k) => [k, `top-${k}`]))
    const nested = Object.fromEntries(SECRET_KEYS.map((k) => [k, `nested-${k}`]))
    log.info({ event: 'x', ...top, packet: { cmd: 'connect', clientId: 'c1', ...nested }, username: 'alice' }, 'line')
    expect(lines).toHaveLength(1)
    const line = lines[0]!
    const text = JSON.stringify(line)
    for (const k of SECRET_KEYS) {
      expect(line[k]).toBe(REDACTED)
      expect((line.packet as Record<string, unknown>)[k]).toBe(REDACTED)
      expect(text).not.toContain(`top-${k}`)
      expect(text).not.toContain(`nested-${k}`)
    }
    expect(line).toMatchObject({ event: 'x', username: 'alice', service: 'moat', msg: 'line', packet: { cmd: 'connect', clientId: 'c1' } })
  })

  it('censors a secret a class instance carries (a decoded packet object), and a Buffer password', () => {
    const { lines, sink } = capture()
    class Packet { cmd = 'connect'; password = Buffer.from('hunter2-secret') }
    createLogger('info', sink).warn({ packet: new Packet(), password: Buffer.from('hunter2-top') }, 'oops')
    const text = JSON.stringify(lines[0])
    expect(text).not.toContain('hunter2')
    expect(text).not.toContain(Buffer.from('hunter2-secret').toString('base64'))
    expect(lines[0]).toMatchObject({ packet: { cmd: 'connect', password: REDACTED }, password: REDACTED })
  })

  it('censors secret keys of a child logger\'s bindings, and both levels of its lines', () => {
    const { lines, sink } = capture()
    const child = createLogger('info', sink).child({ sid: 7, token: 'eyJ-secret-token' })
    child.info({ event: 'y', packet: { secret: 's3cr3t' } }, 'child')
    child.child({ listener: 'l', passphrase: 'open-sesame' }).info({ password: 'pw-in-grandchild' }, 'grandchild')
    const text = lines.map((l) => JSON.stringify(l)).join('')
    for (const secret of ['eyJ-secret-token', 's3cr3t', 'open-sesame', 'pw-in-grandchild']) expect(text).not.toContain(secret)
    expect(lines[0]).toMatchObject({ sid: 7, token: REDACTED, packet: { secret: REDACTED }, event: 'y' })
    expect(lines[1]).toMatchObject({ sid: 7, listener: 'l', passphrase: REDACTED, password: REDACTED })
  })

  it('leaves a line without secrets as it is (no copy) and the caller\'s objects untouched', () => {
    const clean = { event: 'session_end', clientId: 'c', bytesIn: 10, tags: ['password'], payload: Buffer.from('password') }
    expect(redactSecrets(clean)).toBe(clean)
    const inner = { password: 'pw', user: 'u' }
    const fields = { packet: inner, token: 't' }
    const out = redactSecrets(fields)
    expect(out).toEqual({ packet: { password: REDACTED, user: 'u' }, token: REDACTED })
    expect(fields).toEqual({ packet: { password: 'pw', user: 'u' }, token: 't' })
    expect(inner.password).toBe('pw')
  })

  it('does not add keys a line does not have (undefined secrets stay absent)', () => {
    const { lines, sink } = capture()
    createLogger('info', sink).info({ event: 'z', password: undefined, packet: { password: undefined, a: 1 } }, 'absent')
    expect(lines[0]).not.toHaveProperty('password')
    expect(lines[0]!.packet).toEqual({ a: 1 })
  })
})

describe('log time', () => {
  it('writes the time as toISOString does, across milliseconds, seconds and days, in any order', () => {
    const base = Date.UTC(2026, 11, 31, 23, 59, 58)
    const times = [0, 1, 9, 10, 99, 100, 999, 1000, 1001, 1999, 2000, 2345, 1010].map((d) => base + d)
    for (const now of [...times, ...times.reverse(), Date.UTC(2000, 1, 29, 0, 0, 0, 7), 0]) {
      expect(isoTimeAt(now)).toBe(`,"time":"${new Date(now).toISOString()}"`)
    }
  })

  it('stamps each line with the time it was logged', () => {
    const { lines, sink } = capture()
    const before = Date.now()
    createLogger('info', sink).info({ event: 'x' }, 'line')
    const at = Date.parse(lines[0]!.time as string)
    expect(at).toBeGreaterThanOrEqual(before)
    expect(at).toBeLessThanOrEqual(Date.now())
  })
})
