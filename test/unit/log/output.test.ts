/**
 * log.format and log.file, written to real files: what a reader of the file (a person, a log
 * shipper, fail2ban) gets.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { LogConfig } from '../../../src/config/types.js'
import { ConfigError } from '../../../src/errors.js'
import { REDACTED, SECRET_KEYS } from '../../../src/log/logger.js'
import { openLog } from '../../../src/log/output.js'

const dir = mkdtempSync(join(tmpdir(), 'moat-log-output-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

function config(format: LogConfig['format']): LogConfig {
  return { level: 'debug', format, file: join(dir, `moat-${++files}.log`) }
}

/** The file's lines once it holds `count` of them. */
async function linesOf(file: string, count: number): Promise<string[]> {
  const read = (): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [])
  await expect.poll(() => read().length, { timeout: 5000 }).toBe(count)
  return read()
}

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

describe('log.format: json', () => {
  it('writes one JSON object per line with the level name first and an ISO-8601 time in UTC', async () => {
    const c = config('json')
    const before = Date.now()
    const { logger } = await openLog(c)
    logger.info({ event: 'a', n: 1 }, 'first')
    logger.child({ sid: 7 }).warn({ event: 'b' }, 'second')
    logger.debug({ event: 'c' }, 'third')
    const lines = await linesOf(c.file!, 3)
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(parsed.map((l) => l.level)).toEqual(['info', 'warn', 'debug'])
    expect(parsed[1]).toMatchObject({ sid: 7, event: 'b', msg: 'second', service: 'moat' })
    for (const line of parsed) {
      expect(line.time).toMatch(ISO_UTC)
      expect(Date.parse(line.time as string)).toBeGreaterThanOrEqual(before - 1)
      expect(Date.parse(line.time as string)).toBeLessThanOrEqual(Date.now())
    }
    // fail2ban's datepattern reads the time from the start of the line.
    expect(lines[1]).toMatch(/^\{"level":"warn","time":"[^"]+","service":"moat",/)
  })
})

describe('log.format: pretty', () => {
  it('writes one readable line per event: time with its offset, level, message, then the fields', async () => {
    const c = config('pretty')
    const { logger } = await openLog(c)
    logger.warn({ event: 'connect_refused', remote: '127.0.0.1:4242', reason: 'bad_credentials' }, 'refusing client')
    logger.child({ worker: 2 }).info({ event: 'ready' }, 'moat ready')
    logger.error({ err: new Error('boom\nsecond line of the message') }, 'shutdown failed')
    const lines = await linesOf(c.file!, 3)
    expect(lines[0]).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}\] WARN: refusing client \{"event":"connect_refused","remote":"127\.0\.0\.1:4242","reason":"bad_credentials"\}$/)
    expect(lines[1]).toMatch(/\] INFO: moat ready \{"worker":2,"event":"ready"\}$/)
    // An error, its stack and a message with a newline stay on their event's line.
    expect(lines[2]).toMatch(/\] ERROR: shutdown failed \{"err":\{"type":"Error","message":"boom\\nsecond line of the message","stack":"Error: boom\\n/)
  })
})

describe('redaction', () => {
  it.each(['json', 'pretty'] as const)('keeps every secret out of the %s format: top-level, one object down and in bindings', async (format) => {
    const c = config(format)
    const { logger } = await openLog(c)
    const top = Object.fromEntries(SECRET_KEYS.map((k) => [k, `top-secret-${k}`]))
    const nested = Object.fromEntries(SECRET_KEYS.map((k) => [k, `nested-secret-${k}`]))
    logger.warn({ event: 'x', ...top, packet: { cmd: 'connect', ...nested } }, 'line')
    logger.child({ sid: 1, token: 'bound-secret-token' }).child({ passphrase: 'bound-secret-passphrase' }).info({ password: Buffer.from('buffer-secret') }, 'child')
    const text = (await linesOf(c.file!, 2)).join('\n')
    expect(text).not.toMatch(/secret-|buffer-secret|YnVmZmVyLXNlY3JldA/)
    expect(text.split(REDACTED).length - 1).toBe(2 * SECRET_KEYS.length + 3)
  })
})

describe('log.file', () => {
  it('after a rename, reopen() sends new lines to a fresh file at the path; the moved file keeps the old ones', async () => {
    const c = config('json')
    const log = await openLog(c)
    log.logger.info({ event: 'before' }, 'before')
    await linesOf(c.file!, 1)
    renameSync(c.file!, `${c.file}.1`)
    log.logger.info({ event: 'moved' }, 'written after the rename, before the reopen')
    expect(log.reopen()).toBe(true)
    log.logger.info({ event: 'after' }, 'after')
    const fresh = await linesOf(c.file!, 1)
    expect(JSON.parse(fresh[0]!)).toMatchObject({ event: 'after' })
    expect((await linesOf(`${c.file}.1`, 2)).map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['before', 'moved'])
  })

  it('appends to a file that exists (a restart, or a worker next to the others)', async () => {
    const c = config('json')
    ;(await openLog(c)).logger.info({ event: 'one' }, 'one')
    await linesOf(c.file!, 1)
    ;(await openLog(c)).logger.info({ event: 'two' }, 'two')
    expect((await linesOf(c.file!, 2)).map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['one', 'two'])
  })

  it('refuses a file it cannot open, naming the config file and log.file', async () => {
    const file = join(dir, 'no-such-directory', 'moat.log')
    const error = await openLog({ level: 'info', format: 'json', file }, '/etc/moat/moat.yaml').catch((err: unknown) => err)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).message).toBe(`/etc/moat/moat.yaml log.file: cannot open ${file} for appending: ENOENT: no such file or directory, open '${file}'`)
  })

  it('has nothing to reopen on standard output', async () => {
    expect((await openLog({ level: 'silent', format: 'json', file: null })).reopen()).toBe(false)
  })
})
