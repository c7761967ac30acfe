import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

/** Tracked text files: docs, code, configs (what a reader or the build sees). */
function trackedTextFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '*.md', '*.ts', '*.mjs', '*.yaml', '*.yml', '*.json', '*.cfg'], { encoding: 'utf8' })
  return out.split('\n').filter((f) => f !== '')
}

describe('repository text', () => {
  it('holds no unresolved merge conflict', () => {
    const files = trackedTextFiles()
    expect(files.length).toBeGreaterThan(100)
    const conflicted = files.filter((f) => /^(<{7} |>{7} |={7}$)/m.test(readFileSync(f, 'utf8')))
    expect(conflicted).toEqual([])
  })
})
