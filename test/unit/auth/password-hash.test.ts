import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parsePasswordFile } from '../../../src/auth/file.js'
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../src/auth/password-hash.js'

const fail = (line: number, message: string): Error => new Error(`line ${line}: ${message}`)

describe('password hashes', () => {
  it('verifies $7$ lines written by the real mosquitto_passwd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-pw-'))
    try {
      const file = join(dir, 'passwd')
      execFileSync('mosquitto_passwd', ['-c', '-b', file, 'u1', 'pässwörd ✓'])
      const users = parsePasswordFile(readFileSync(file, 'utf8'), fail)
      const h = users.get('u1')!
      expect(h.kind).toBe('pbkdf2-sha512')
      expect(await verifyPassword(h, Buffer.from('pässwörd ✓'))).toBe(true)
      expect(await verifyPassword(h, Buffer.from('pässwörd'))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('round-trips a scrypt hash from hashPassword', async () => {
    const line = await hashPassword(Buffer.from('s3cret'), { N: 1024, r: 8, p: 1 })
    expect(line).toMatch(/^\$scrypt\$N=1024,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/)
    const h = parsePasswordHash(line)!
    expect(await verifyPassword(h, Buffer.from('s3cret'))).toBe(true)
    expect(await verifyPassword(h, Buffer.from('s3cret '))).toBe(false)
  })

  it.each([
    ['an unknown scheme', '$1$abc$def'],
    ['plain text', 'secret'],
    ['a $7$ hash of the wrong length', '$7$101$c2FsdA==$c2hvcnQ='],
    ['a $7$ hash with absurd iterations', `$7$999999999$c2FsdA==$${Buffer.alloc(64).toString('base64')}`],
    ['scrypt with N not a power of two', `$scrypt$N=1000,r=8,p=1$c2FsdA==$${Buffer.alloc(64).toString('base64')}`],
    ['scrypt asking for gigabytes', `$scrypt$N=16777216,r=8,p=1$c2FsdA==$${Buffer.alloc(64).toString('base64')}`],
  ])('refuses %s', (_what, text) => {
    expect(parsePasswordHash(text)).toBeNull()
  })

  it('names the line of a malformed or duplicate entry', () => {
    expect(() => parsePasswordFile('# comment\n\nalice:$1$x$y\n', fail)).toThrow(/line 3: unsupported or malformed hash for user 'alice'/)
    expect(() => parsePasswordFile('nocolon\n', fail)).toThrow(/line 1: expected user:hash/)
    const h = `$6$c2FsdA==$${Buffer.alloc(64).toString('base64')}`
    expect(() => parsePasswordFile(`a:${h}\na:${h}\n`, fail)).toThrow(/line 2: user 'a' appears twice/)
  })
})
