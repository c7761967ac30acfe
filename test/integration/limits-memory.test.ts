/**
 * A client that subscribes and never reads: Moat (the real binary, in its own process) keeps its
 * memory bounded while ~100 MiB are published at that client, because it stops reading that
 * client's broker connection, not the broker, and not the other clients, which keep getting their
 * messages. Once the slow client reads again, it gets every message, in order.
 *
 * Memory is the child's resident set (VmRSS in /proc/<pid>/status), sampled while the flood runs.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, rawSession, uid } from '../helpers/clients.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const cli = join(root, 'dist/cli.js')

const MESSAGES = 1600
const SIZE = 64 * 1024 // 1600 × 64 KiB = 100 MiB at one client that does not read
/** Growth of Moat's resident set allowed while that happens: well under what it would take to buffer it. */
const BOUND = 48 * 1024 * 1024

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (match === null) throw new Error('no VmRSS in /proc/<pid>/status')
  return Number(match[1]) * 1024
}

/** Runs `node dist/cli.js --config …` and resolves with the port its listener bound. */
function startMoatProcess(config: string): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, '--config', config], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const onData = (d: Buffer): void => {
      output += d
      const match = /"event":"listening".*?"port":(\d+)/.exec(output)
      if (match !== null) {
        child.stdout!.off('data', onData)
        child.stdout!.resume() // keep draining its log
        resolve({ child, port: Number(match[1]) })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (d: Buffer) => { output += d })
    child.on('exit', (code) => reject(new Error(`moat exited (${code}) before it was ready:\n${output}`)))
  })
}

const kinds = brokerKinds()
describe.runIf(process.platform === 'linux')(`a client that never reads (moat as a process, ${kinds[0]})`, () => {
  let broker: TestBroker
  let moat: { child: ChildProcess; port: number }

  beforeAll(async () => {
    broker = await startBroker(kinds[0]!)
    const dir = mkdtempSync(join(tmpdir(), 'moat-memory-'))
    const config = join(dir, 'moat.yaml')
    writeFileSync(config, [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: ${broker.host}, port: ${broker.port} }`,
      'limits: { maxPacketSize: 1MiB }',
      'log: { level: info }',
      'auth: { anonymous: true }',
    ].join('\n'))
    moat = await startMoatProcess(config)
  })
  afterAll(async () => {
    if (moat?.child.exitCode === null) {
      moat.child.kill('SIGKILL')
    }
    await broker?.stop()
  })

  it('keeps Moat\'s memory bounded while 100 MiB are sent to it; other clients keep getting their messages; nothing is lost', async () => {
    const floodTopic = uid('flood')
    const otherTopic = uid('other')
    const slow = await rawSession(moat.port, uid('never-reads'))
    slow.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: floodTopic, qos: 0 }] }))
    expect(await slow.nextPacket()).toMatchObject({ cmd: 'suback' })
    slow.socket.pause() // never reads

    const other = await connect(moat.port)
    const otherInbox = new Inbox(other)
    await other.subscribeAsync(otherTopic)

    const pid = moat.child.pid!
    const baseline = rssOf(pid)
    let peak = baseline
    const sampler = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 25)
    try {
      const publisher = await connect(broker.port) // straight to the broker
      const payload = Buffer.alloc(SIZE, 0x61)
      for (let n = 0; n < MESSAGES; n++) {
        payload.writeUInt32BE(n, 0)
        await publisher.publishAsync(floodTopic, Buffer.from(payload))
        // Meanwhile the other client, on the same Moat, keeps getting its messages.
        if (n % 400 === 399) {
          await publisher.publishAsync(otherTopic, `tick ${n}`)
          await otherInbox.waitForTopic(otherTopic, 15_000)
          otherInbox.messages.length = 0
        }
      }
      await publisher.publishAsync(otherTopic, 'after the flood')
      expect((await otherInbox.waitForTopic(otherTopic, 15_000)).payload.toString()).toBe('after the flood')
      peak = Math.max(peak, rssOf(pid))
      await publisher.endAsync()
    } finally {
      clearInterval(sampler)
    }
    expect(peak - baseline).toBeLessThan(BOUND)

    // The slow client reads again: every message, in order (paused, not dropped).
    slow.socket.resume()
    const before = slow.packets.length
    await slow.nextPacket(before + MESSAGES - 1, 60_000)
    const received = slow.packets.slice(before).filter((p) => p.cmd === 'publish').map((p) => (p as { payload: Buffer }).payload)
    expect(received).toHaveLength(MESSAGES)
    received.forEach((payload, n) => expect(payload.readUInt32BE(0)).toBe(n))
    slow.destroy()
    await other.endAsync()
  }, 120_000)
})
