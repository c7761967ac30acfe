import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { configFromObject, loadConfig } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'

const base = { listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 1883 }], upstream: { host: '127.0.0.1', port: 1884 } }

describe('the log section', () => {
  it('defaults to JSON lines at info on standard output', () => {
    expect(configFromObject(base).log).toEqual({ level: 'info', format: 'json', file: null })
    expect(configFromObject({ ...base, log: { level: 'debug' } }).log).toEqual({ level: 'debug', format: 'json', file: null })
  })

  it('resolves a relative log.file against the config file\'s directory, and keeps an absolute one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-log-config-'))
    const file = join(dir, 'moat.yaml')
    writeFileSync(file, 'listeners: [{ name: mqtt, protocol: mqtt, port: 1883 }]\nupstream: { host: 127.0.0.1, port: 1884 }\nlog: { format: pretty, file: logs/moat.log }\n')
    expect(loadConfig(file).log).toEqual({ level: 'info', format: 'pretty', file: join(dir, 'logs/moat.log') })
    expect(configFromObject({ ...base, log: { file: '/var/log/moat/moat.log' } }).log.file).toBe('/var/log/moat/moat.log')
  })

  it('refuses an unknown format, an empty file and an unknown key, naming each key', () => {
    let error: unknown
    try {
      configFromObject({ ...base, log: { format: 'text', file: '', rotate: true } })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const issues = (error as ConfigError).issues.map((i) => [i.path, i.message])
    expect(issues).toEqual(expect.arrayContaining([
      ['log.format', expect.stringMatching(/expected json .* or pretty/)],
      ['log.file', 'must not be empty'],
      [expect.stringMatching(/^log/), expect.stringMatching(/rotate/)],
    ]))
  })
})
