/**
 * The log sinks (src/log/sink.ts) on real descriptors: a pipe whose reader stops (a child process
 * writing through the standard-output sink), /dev/full for a file that cannot take a line, and a
 * log file read back as soon as write() returns.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { fileSink, MAX_BACKLOG_BYTES } from '../../../src/log/sink.js'

const dir = mkdtempSync(join(tmpdir(), 'moat-log-sink-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
afterEach(() => vi.restoreAllMocks())

const SINK = new URL('../../../dist/log/sink.js', import.meta.url).pathname

describe('stdoutSink on a pipe', () => {
  it('keeps what a stopped reader has not taken, up to its cap; drops the rest, counted in one line once the reader is back; the writer never blocks', async () => {
    // 1 KiB lines, 4 MiB more than the cap. The child logs 'written' on stderr when its loop is done:
    // it got there while nobody read its standard output (its writes did not block).
    const lines = MAX_BACKLOG_BYTES / 1024 + 4096
    const script = `
      import { stdoutSink } from ${JSON.stringify(SINK)}
      const sink = stdoutSink()
      const pad = 'x'.repeat(1000)
      for (let i = 0; i < ${lines}; i++) sink.write(JSON.stringify({ n: i, pad }).padEnd(1023, ' ') + '\\n')
      process.stderr.write('written\\n')
      process.stdout.once('drain', () => { sink.write('{"n":"after"}\\n'); sink.flush(() => process.exit(0)) })
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.pause()
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d })
    await expect.poll(() => stderr, { timeout: 20_000 }).toBe('written\n')
    const chunks: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => chunks.push(d))
    child.stdout.resume()
    // 'close': the child has exited and its standard output is read to the end.
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(code).toBe(0)
    const out = Buffer.concat(chunks).toString().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
    const kept = out.filter((l) => typeof l.n === 'number').map((l) => l.n as number)
    // The kept lines are the first ones, whole and in order: what was dropped is the tail.
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => i))
    expect(kept.length).toBeGreaterThanOrEqual(MAX_BACKLOG_BYTES / 1024)
    expect(kept.length).toBeLessThan(lines)
    const count = out.filter((l) => l.event === 'log_lines_dropped')
    expect(count).toEqual([expect.objectContaining({ level: 'warn', service: 'moat', dropped: lines - kept.length })])
    expect(out.at(-2)).toBe(count[0])
    expect(out.at(-1)).toEqual({ n: 'after' })
  }, 60_000)
})

describe('fileSink', () => {
  it('has written a line when write() returns: the file holds it before the caller does anything else', () => {
    const file = join(dir, 'now.log')
    const sink = fileSink(file)
    sink.write('{"event":"session_open"}\n')
    expect(readFileSync(file, 'utf8')).toBe('{"event":"session_open"}\n')
    sink.write('{"event":"session_end"}\n')
    expect(readFileSync(file, 'utf8').split('\n')).toEqual(['{"event":"session_open"}', '{"event":"session_end"}', ''])
  })

  it('a file that cannot take a line (a full disk: /dev/full) loses it, says so on stderr once, and the caller goes on', () => {
    if (!existsSync('/dev/full')) throw new Error('/dev/full is needed for this test (Linux)')
    const said: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((text: string | Uint8Array) => { said.push(String(text)); return true })
    const sink = fileSink('/dev/full')
    for (let i = 0; i < 3; i++) expect(sink.write(`{"n":${i}}\n`)).toBe(true)
    expect(said).toEqual(['moat: log file /dev/full: ENOSPC: no space left on device, write (lines are lost until a write succeeds)\n'])
  })
})
