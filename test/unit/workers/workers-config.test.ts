/** The `workers` key: its default, `auto`, and clear errors for values that are not a worker count. */
import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'
import { workerCount } from '../../../src/workers/worker-count.js'
import { parseConfig } from '../../../src/config/load.js'

const base = 'listeners: [{ name: mqtt, protocol: mqtt, port: 1883 }]\nupstream: { host: 127.0.0.1, port: 1884 }\n'

describe('workers', () => {
  it('defaults to 1: one process, no cluster', () => {
    const config = parseConfig(base, 'moat.yaml')
    expect(config.workers).toBe(1)
    expect(workerCount(config)).toBe(1)
  })

  it('takes a number of processes, or auto for one per core', () => {
    expect(workerCount(parseConfig(base + 'workers: 4\n', 'moat.yaml'))).toBe(4)
    const auto = parseConfig(base + 'workers: auto\n', 'moat.yaml')
    expect(auto.workers).toBe('auto')
    expect(workerCount(auto)).toBe(availableParallelism())
  })

  it.each([
    ['0', /moat\.yaml:3:\d+ workers: must be at least 1/],
    ['1.5', /moat\.yaml:3:\d+ workers: expected a number of worker processes \(1-256\) or 'auto'/],
    ['many', /moat\.yaml:3:\d+ workers: .*'auto'/],
    ['1000', /moat\.yaml:3:\d+ workers: at most 256/],
  ])('refuses workers: %s, naming the file, line and key', (value, message) => {
    expect(() => parseConfig(`${base}workers: ${value}\n`, 'moat.yaml')).toThrow(message)
  })
})
