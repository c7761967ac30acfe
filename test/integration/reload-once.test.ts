/**
 * One config edit is seen twice: by the operator's SIGHUP and by the file watch. It is applied
 * once, whichever comes first, by a single process and by a cluster's primary alike; a SIGHUP after
 * only a file the config names changed (a password file) still reloads.
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hashPassword } from '../../src/auth/password-hash.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { MoatProcess, type LogLine } from '../helpers/moat-process.js'

const SLOW = 60_000
let broker: TestBroker
beforeAll(async () => {
  broker = await startBroker(brokerKinds()[0]!)
})
afterAll(async () => {
  await broker?.stop()
})

/** Written whole (a temporary file renamed over it), as the watch would otherwise see half a file. */
function writeWhole(file: string, config: Record<string, unknown>): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(config, null, 2))
  renameSync(`${file}.tmp`, file)
}

async function reloadsTotal(adminPort: number, outcome: 'success' | 'failure'): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`moat_config_reloads_total{outcome="${outcome}"} `))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

const isReload = (outcome: string) => (l: LogLine): boolean => l.event === 'config_reload' && l.outcome === outcome

describe('single process', () => {
  let dir: string
  let moat: MoatProcess | null = null
  const config = (maxPacketSize: string, passwd: string): Record<string, unknown> => ({
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: broker.host, port: broker.port },
    admin: { host: '127.0.0.1', port: 0 },
    limits: { maxPacketSize },
    auth: { backends: [{ type: 'file', path: passwd }] },
    log: { level: 'debug' },
  })
  async function passwordFile(users: string[]): Promise<string> {
    const path = join(dir, 'passwd')
    const lines = await Promise.all(users.map(async (u) => `${u}:${await hashPassword(Buffer.from('pw'), { N: 1024, r: 8, p: 1 })}`))
    writeFileSync(path, lines.join('\n') + '\n')
    return path
  }
  afterEach(async () => {
    await moat?.stop()
    moat = null
  })

  it('an edit then SIGHUP: one reload (the watch finds nothing to do); the watch first, then SIGHUP: one reload too', async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-reload-once-'))
    const passwd = await passwordFile(['alice'])
    moat = await MoatProcess.start(dir, 'moat.yaml', config('64KiB', passwd))
    const file = join(dir, 'moat.yaml')
    const successes = (): number => moat!.logs.filter(isReload('success')).length
    const unchanged = (): LogLine[] => moat!.logs.filter(isReload('unchanged'))

    // SIGHUP right after the edit (a config-management tool): the watch's poll then finds it applied.
    writeWhole(file, config('32KiB', passwd))
    moat.signal('SIGHUP')
    await moat.waitForLog((l) => isReload('unchanged')(l) && l.trigger === 'watch', 10_000)
    expect(successes()).toBe(1)
    expect(await reloadsTotal(moat.adminPort, 'success')).toBe(1)
    expect(moat.logs.filter((l) => l.event === 'config_changed')).toHaveLength(0)

    // The watch first (an operator who edits, then types the SIGHUP): the signal finds it applied.
    writeWhole(file, config('16KiB', passwd))
    await moat.waitForLog((l) => l.event === 'config_changed', 10_000)
    await expect.poll(successes, { timeout: 10_000 }).toBe(2)
    moat.signal('SIGHUP')
    await expect.poll(() => unchanged().filter((l) => l.trigger === 'signal').length, { timeout: 10_000 }).toBe(1)
    expect(successes()).toBe(2)
    expect(await reloadsTotal(moat.adminPort, 'success')).toBe(2)
    expect(moat.logs.filter((l) => l.event === 'config_reload' && l.outcome === 'success').map((l) => l.generation)).toEqual([2, 3])

    // Only the password file changed (the config file did not): SIGHUP reloads it.
    await passwordFile(['alice', 'bob'])
    moat.signal('SIGHUP')
    await expect.poll(successes, { timeout: 10_000 }).toBe(3)
    expect(await reloadsTotal(moat.adminPort, 'success')).toBe(3)
  }, SLOW)

  it('an invalid edit then SIGHUP: refused and counted once', async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-reload-once-'))
    const passwd = await passwordFile(['alice'])
    moat = await MoatProcess.start(dir, 'moat.yaml', config('64KiB', passwd))
    const file = join(dir, 'moat.yaml')
    writeWhole(file, { ...config('64KiB', passwd), bogus: 1 })
    moat.signal('SIGHUP')
    await moat.waitForLog((l) => l.event === 'config_reload' && l.outcome === 'failure' && l.level === 'debug', 10_000) // the watch's: at debug
    const warned = moat.logs.filter((l) => l.event === 'config_reload' && l.outcome === 'failure' && l.level === 'warn')
    expect(warned).toHaveLength(1)
    expect(String(warned[0]!.error)).toMatch(/bogus/)
    expect(await reloadsTotal(moat.adminPort, 'failure')).toBe(1)
    expect(await reloadsTotal(moat.adminPort, 'success')).toBe(0)
  }, SLOW)
})

describe('workers: 2', () => {
  let cluster: MoatCluster | null = null
  afterAll(async () => {
    await cluster?.kill()
  })

  it('an edit then SIGHUP: the primary validates and sends it once, each worker reloads once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-reload-once-'))
    const file = join(dir, 'moat.yaml')
    const config = (maxPacketSize: string): Record<string, unknown> => ({
      workers: 2,
      listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
      upstream: { host: broker.host, port: broker.port },
      admin: { host: '127.0.0.1', port: 0 },
      limits: { maxPacketSize },
      auth: { anonymous: true },
      log: { level: 'debug' },
    })
    writeWhole(file, config('64KiB'))
    cluster = await MoatCluster.start(file)
    writeWhole(file, config('32KiB'))
    cluster.child.kill('SIGHUP')
    await expect.poll(() => cluster!.lines.some((l) => isReload('unchanged')(l) && l.role === 'primary' && l.trigger === 'watch'), { timeout: SLOW }).toBe(true)
    await expect.poll(() => cluster!.all({ event: 'config_reload', outcome: 'success' }).map((l) => l.worker).sort(), { timeout: SLOW }).toEqual([1, 2])
    expect(cluster.all({ event: 'config_reload', outcome: 'sent' })).toHaveLength(1)
    expect(await cluster.value('moat_config_reloads_total{outcome="success"}')).toBe(1)
  }, SLOW)
})
