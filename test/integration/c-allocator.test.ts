/**
 * Moat on jemalloc, preloaded the way docs/tuning.md shows (and the systemd unit's commented line):
 * the `ready` line names the allocator the process really runs on (checked against the kernel's
 * map of the process), and honest traffic passes unchanged (a subscriber on the broker itself).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, shortId } from '../helpers/clients.js'
import { JEMALLOC_ENV, jemallocAvailable } from '../helpers/jemalloc.js'
import { MoatProcess } from '../helpers/moat-process.js'

const kind = brokerKinds()[0]!
const SLOW = 60_000

describe.runIf(process.platform === 'linux')(`the C allocator, in front of ${kind}`, () => {
  let broker: TestBroker
  let witness: MqttClient
  let seen: Inbox
  let dir: string
  const running: MoatProcess[] = []
  const withJemalloc = jemallocAvailable()

  const config = {
    listeners: [{ name: 'edge', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: '127.0.0.1', port: 0 },
    auth: { anonymous: true },
    acl: { rules: [{ name: 'alloc', allow: 'all', topic: 'alloc/#' }] },
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    config.upstream.port = broker.port
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('alloc/#', { qos: 1 })
    dir = mkdtempSync(join(tmpdir(), 'moat-allocator-'))
  }, SLOW)

  afterEach(async () => {
    for (const moat of running.splice(0)) await moat.stop()
  })

  afterAll(async () => {
    await witness?.endAsync()
    await broker?.stop()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  /** A 1 KiB payload through Moat reaches the broker's own subscriber byte for byte. */
  async function passesTraffic(port: number): Promise<void> {
    const client = await connect(port)
    const topic = `alloc/${shortId()}`
    const payload = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 251))
    await client.publishAsync(topic, payload, { qos: 1 })
    await client.endAsync()
    expect((await seen.waitForTopic(topic, SLOW)).payload.equals(payload)).toBe(true)
  }

  const maps = (pid: number): string => readFileSync(`/proc/${pid}/maps`, 'utf8')
  const threadNames = (pid: number): string[] => readdirSync(`/proc/${pid}/task`).map((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim())

  it('without a preload: the ready line says libc, and no jemalloc is mapped', async () => {
    const env = { ...process.env }
    delete env.LD_PRELOAD
    const moat = await MoatProcess.start(dir, 'libc.yaml', config, { env })
    running.push(moat)
    expect(moat.logs.find((l) => l.event === 'ready')?.allocator).toBe('libc')
    expect(maps(moat.pid)).not.toContain('libjemalloc')
    expect(threadNames(moat.pid)).not.toContain('jemalloc_bg_thd')
    await passesTraffic(moat.port)
  }, SLOW)

  if (withJemalloc) {
    it('with the preload of docs/tuning.md: the ready line says jemalloc, its purging thread runs, and traffic passes', async () => {
      const moat = await MoatProcess.start(dir, 'jemalloc.yaml', config, { env: { ...process.env, ...JEMALLOC_ENV } })
      running.push(moat)
      expect(moat.logs.find((l) => l.event === 'ready')?.allocator).toBe('jemalloc')
      expect(maps(moat.pid)).toContain('/libjemalloc.so.2')
      // background_thread:true: jemalloc's own thread, which gives freed memory back while Moat is idle.
      expect(threadNames(moat.pid)).toContain('jemalloc_bg_thd')
      await passesTraffic(moat.port)
    }, SLOW)
  }
})
