/**
 * A listener's accept queue is long enough for a fleet reconnecting at once: the kernel reports
 * the backlog of a listening socket as its Send-Q (`ss -lnt`), capped at net.core.somaxconn.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { startMoat } from '../helpers/moat.js'

const moats: Moat[] = []
afterAll(async () => {
  for (const m of moats) await m.shutdown(0)
})

describe('listen backlog', () => {
  it('is 4096 (or net.core.somaxconn where that is lower), not Node\'s 511', async () => {
    const moat = await startMoat({ host: '127.0.0.1', port: 1 })
    moats.push(moat)
    const { port } = moat.address()
    const line = execFileSync('ss', ['-lntH', `sport = :${port}`], { encoding: 'utf8' }).trim()
    const sendQ = Number(line.split(/\s+/)[2])
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
    expect(sendQ).toBe(Math.min(4096, somaxconn))
    expect(sendQ).toBeGreaterThan(511)
  })
})
