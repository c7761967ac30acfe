/**
 * The config watcher acts only on a settled file: a file rewritten in place in several writes is
 * reloaded once, whole, never half-way (half a policy can be valid and allow more than the whole).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigWatcher, fileStamp } from '../../../src/policy/watch.js'

const watchers: ConfigWatcher[] = []
const dirs: string[] = []
afterEach(() => {
  for (const w of watchers.splice(0)) w.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** `editBeforeWatch`: written after the stamp of the load and before the watch starts. */
function watched(initial: string, settleMs: number, editBeforeWatch: string | null = null): { file: string; seen: string[]; settled: Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'moat-watch-'))
  dirs.push(dir)
  const file = join(dir, 'moat.yaml')
  writeFileSync(file, initial)
  const seen: string[] = []
  let wake: () => void = () => {}
  const settled = new Promise<void>((resolve) => { wake = resolve })
  const watcher = new ConfigWatcher(file, () => {
    seen.push(readFileSync(file, 'utf8'))
    wake()
  })
  const loaded = fileStamp(file)
  if (editBeforeWatch !== null) writeFileSync(file, editBeforeWatch)
  watcher.start(10, settleMs, loaded)
  watchers.push(watcher)
  return { file, seen, settled }
}

const until = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('ConfigWatcher', () => {
  it('reloads once a change has settled', async () => {
    const w = watched('a: 1\n', 50)
    await until(30) // the first poll records the starting state
    writeFileSync(w.file, 'a: 2\n')
    await w.settled
    expect(w.seen).toEqual(['a: 2\n'])
  })

  it('an edit made after the config was loaded but before the watch started is reloaded (the poll alone starts from the edited file)', async () => {
    const w = watched('a: 1\n', 50, 'a: 22\n')
    await w.settled
    expect(w.seen).toEqual(['a: 22\n'])
  })

  it('a file written in place in pieces is reloaded once, whole', async () => {
    const w = watched('acl: [deny all]\n', 1000)
    await until(30)
    writeFileSync(w.file, 'listeners: []\n') // the first piece: on its own, a policy without an acl
    await until(100) // the watcher has seen it (polls every 10 ms) and is waiting for it to settle
    appendFileSync(w.file, 'acl: [deny all, and more]\n')
    await w.settled
    expect(w.seen).toEqual(['listeners: []\nacl: [deny all, and more]\n'])
  })
})
