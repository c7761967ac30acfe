/**
 * The policy file replaced by garbage while traffic flows (Moat watching the file, as in
 * production): random bytes, broken YAML, an unknown key, an invalid value, an empty file, NUL
 * bytes. Each failed reload is counted and logged; the running policy stays, for open sessions and
 * new ones alike (a topic it denies stays denied; nothing it allows is refused); not one message of
 * a steady QoS 1 stream is lost; and a valid file is picked up again afterwards.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, shortId, uid } from '../helpers/clients.js'
import { capturingLogger } from '../helpers/listeners.js'

const kind = brokerKinds()[0]!
const MESSAGES = 300

/**
 * Replaces the file in one step (write aside, rename), as editors and config tools do, so the
 * watcher never sees a half-written file (that would be a second, different garbage).
 */
function replaceFile(file: string, content: string | Buffer): void {
  writeFileSync(`${file}.tmp`, content)
  renameSync(`${file}.tmp`, file)
}

describe(`a policy file replaced by garbage while traffic flows (${kind})`, () => {
  let broker: TestBroker
  let moat: Moat
  let file: string
  const logs: Array<Record<string, unknown>> = []

  function policy(extra: string[] = []): string {
    return [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'log: { level: info }',
      'auth: { anonymous: true }',
      'acl:',
      '  - { allow: all, topic: "stream/#" }',
      '  - { deny: all, topic: "#" }',
      ...extra,
      '',
    ].join('\n')
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    file = join(mkdtempSync(join(tmpdir(), 'moat-garbage-')), 'moat.yaml')
    writeFileSync(file, policy())
    moat = new Moat(loadConfig(file), { logger: capturingLogger(logs) })
    await moat.start()
    moat.watchConfig(undefined, 20)
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('keeps the running policy through six kinds of garbage, counts each failure, loses and refuses nothing of a steady stream', async () => {
    const port = moat.address().port
    const topic = `stream/${uid('s')}`
    const subscriber = await connect(port, { protocolVersion: kind === 'mosquitto' ? 5 : 4 })
    const inbox = new Inbox(subscriber)
    await subscriber.subscribeAsync(topic, { qos: 1 })
    const publisher = await connect(port, { protocolVersion: kind === 'mosquitto' ? 5 : 4 })

    const garbage: Array<string | Buffer> = [
      randomBytes(4096),
      'listeners: [this is not: valid yaml',
      policy(['bogus: 1']), // an unknown key
      policy(['limits: { maxPacketSize: lots }']), // an invalid value
      '', // emptied (a config tool truncating the file)
      Buffer.alloc(512, 0),
    ]
    const failuresAt: number[] = []
    let written = 0
    let deniedChecks = 0
    const acks: number[] = []
    for (let n = 0; n < MESSAGES; n++) {
      const packet = await publisher.publishAsync(topic, String(n), { qos: 1 })
      acks.push((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0)
      // Every 40 messages, the next garbage; the stream goes on while the watcher finds it.
      if (n % 40 === 20 && written < garbage.length) {
        const before = moat.stats.configReloadFailures
        replaceFile(file, garbage[written++]!)
        failuresAt.push(before)
      }
      if (n % 40 === 39 && failuresAt.length > 0) {
        await expect.poll(() => moat.stats.configReloadFailures, { timeout: 10_000 }).toBe(failuresAt.length)
        // A new client gets the running policy: a topic it denies is still denied.
        await expectDenied(port, broker)
        deniedChecks++
      }
    }
    await expect.poll(() => moat.stats.configReloadFailures, { timeout: 10_000 }).toBe(garbage.length)

    const got = await inbox.waitFor(MESSAGES, 20_000)
    const numbers = [...new Set(got.map((m) => Number(String(m.payload))))]
    expect(numbers).toEqual(Array.from({ length: MESSAGES }, (_, n) => n))
    expect(acks.every((code) => code < 0x80)).toBe(true)
    expect(moat.stats.rejectedFor('acl_denied')).toBe(kind === 'mosquitto' ? deniedChecks : 0) // those refusals, and nothing of the stream
    expect(moat.policy.generation).toBe(1)
    const failures = logs.filter((l) => l.event === 'config_reload' && l.outcome === 'failure')
    expect(failures).toHaveLength(garbage.length)
    for (const line of failures) expect(String(line.error)).not.toBe('')

    // A valid file is picked up again.
    replaceFile(file, policy(['limits: { maxPacketSize: 128KiB }']))
    await expect.poll(() => moat.policy.generation, { timeout: 10_000 }).toBe(2)
    expect(moat.config.limits.maxPacketSize).toBe(128 * 1024)
    await publisher.publishAsync(topic, 'after', { qos: 1 })
    expect(String((await inbox.waitFor(MESSAGES + 1, 10_000)).at(-1)!.payload)).toBe('after')
    await publisher.endAsync()
    await subscriber.endAsync()
  }, 60_000)
})

/** A fresh client may not publish outside stream/#: 5.0 PUBACK 0x87 (3.1.1: dropped, counted); the broker gets nothing. */
async function expectDenied(port: number, broker: TestBroker): Promise<void> {
  if (broker.kind !== 'mosquitto') return // Aedes has no 5.0, and a 3.1.1 refusal has no negative ack to read
  const clientId = shortId()
  const client: MqttClient = await connect(port, { protocolVersion: 5, clientId })
  const topic = uid('forbidden')
  await expect(client.publishAsync(topic, 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
  await client.endAsync()
  await broker.clientGone(clientId)
  expect(broker.received(clientId)).toEqual(['connect', 'disconnect'])
}
