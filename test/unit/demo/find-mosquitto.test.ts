/** Where `moat demo` looks for Mosquitto: PATH first, then where packages put it outside a user's PATH. */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findMosquitto } from '../../../src/demo/mosquitto.js'

function dirWith(mode: number | null): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-find-'))
  if (mode !== null) {
    writeFileSync(join(dir, 'mosquitto'), '#!/bin/sh\n')
    chmodSync(join(dir, 'mosquitto'), mode)
  }
  return dir
}

describe('findMosquitto', () => {
  it('takes the first executable mosquitto on PATH, skipping a file that cannot be run', () => {
    const empty = dirWith(null)
    const notExecutable = dirWith(0o644)
    const found = dirWith(0o755)
    expect(findMosquitto([empty, notExecutable, found].join(':'), [])).toBe(join(found, 'mosquitto'))
  })

  it('falls back to the places outside PATH (/usr/sbin), and says null when there is none', () => {
    const sbin = dirWith(0o755)
    expect(findMosquitto(dirWith(null), [join(sbin, 'mosquitto')])).toBe(join(sbin, 'mosquitto'))
    expect(findMosquitto('', [join(dirWith(null), 'mosquitto')])).toBeNull()
  })
})
