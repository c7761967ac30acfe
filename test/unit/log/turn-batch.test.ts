/**
 * The lines of one event-loop turn reach the destination as one write, in order, before the next
 * turn polls; flush() hands over what is pending; a process that exits writes what it still holds.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { TurnBatch, type LineSink } from '../../../src/log/turn-batch.js'

class Recorder implements LineSink {
  readonly writes: string[] = []
  flushes = 0
  write(lines: string): boolean {
    this.writes.push(lines)
    return true
  }

  flush(done: (err?: Error) => void): void {
    this.flushes++
    done()
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

const dir = mkdtempSync(join(tmpdir(), 'moat-turn-batch-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('TurnBatch', () => {
  it('writes the lines of one turn as one write, in order, by the end of the turn', async () => {
    const sink = new Recorder()
    const batch = new TurnBatch(sink)
    batch.write('a\n')
    batch.write('b\n')
    batch.write('c\n')
    expect(sink.writes).toEqual([])
    await turn()
    expect(sink.writes).toEqual(['a\nb\nc\n'])
    batch.write('d\n')
    await turn()
    expect(sink.writes).toEqual(['a\nb\nc\n', 'd\n'])
  })

  it('writes nothing for a turn without lines', async () => {
    const sink = new Recorder()
    const batch = new TurnBatch(sink)
    batch.write('x\n')
    await turn()
    await turn()
    expect(sink.writes).toEqual(['x\n'])
  })

  it('flush() hands the pending lines over before flushing the destination', async () => {
    const sink = new Recorder()
    const batch = new TurnBatch(sink)
    batch.write('pending\n')
    await new Promise<void>((resolve) => batch.flush(() => resolve()))
    expect(sink.writes).toEqual(['pending\n'])
    expect(sink.flushes).toBe(1)
    await turn()
    expect(sink.writes).toEqual(['pending\n'])
  })

  it('a process that logs and exits in the same turn loses no line (real pino, real file)', () => {
    const file = join(dir, 'exit.log')
    // dist/ is built by test/global-setup.ts.
    const module = new URL('../../../dist/log/output.js', import.meta.url).pathname
    const script = `import { openLog } from ${JSON.stringify(module)}
const { logger } = await openLog({ level: 'info', format: 'json', file: ${JSON.stringify(file)} })
await new Promise((resolve) => setTimeout(resolve, 200)) // the file is opened asynchronously
for (let i = 0; i < 100; i++) logger.info({ event: 'line', i }, 'before exit')
process.exit(0)`
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe' })
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(Array.from({ length: 100 }, (_, i) => i))
  })
})
