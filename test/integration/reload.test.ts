/**
 * Reload (SIGHUP): a valid file swaps the policy for every packet from now on, open sessions
 * included; an invalid file leaves the running policy in place, logged and counted.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { rawSession, uid } from '../helpers/clients.js'

describe('config reload', () => {
  let broker: TestBroker
  let moat: Moat
  let file: string

  function writePolicy(maxPacketSize: string): void {
    writeFileSync(file, [
      'listeners: [{ name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      `limits: { maxPacketSize: ${maxPacketSize} }`,
      'log: { level: silent }',
      'auth: { anonymous: true }',
    ].join('\n'))
  }

  beforeAll(async () => {
    broker = await startBroker('aedes')
    file = join(mkdtempSync(join(tmpdir(), 'moat-reload-')), 'moat.yaml')
    writePolicy('64KiB')
    moat = new Moat(loadConfig(file), { logger: pino({ level: 'silent' }) })
    await moat.start()
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  const publish = (topic: string, size: number): Buffer =>
    generate({ cmd: 'publish', topic, payload: Buffer.alloc(size, 1), qos: 0, retain: false, dup: false })

  it('applies a lower maxPacketSize to an open session for the packets that follow', async () => {
    const id = uid('reload')
    const raw = await rawSession(moat.address().port, id)
    raw.send(publish(`${id}/before`, 2048)) // allowed under 64 KiB
    await expect.poll(() => broker.received(id)).toEqual(['connect', `publish ${id}/before`])
    writePolicy('1KiB')
    expect(moat.reload()).toBe(true)
    expect(moat.policy.generation).toBe(2)
    raw.send(publish(`${id}/after`, 2048)) // now over the cap
    await raw.closed
    await broker.clientGone(id)
    await expect.poll(() => broker.received(id)).toEqual(['connect', `publish ${id}/before`])
    expect(moat.stats.closedFor('packet_too_large')).toBe(1)
  })

  it('keeps the running policy when the file becomes invalid, and counts the failure', async () => {
    writeFileSync(file, 'listeners: [this is not: valid yaml')
    expect(moat.reload()).toBe(false)
    writePolicy('lots')
    expect(moat.reload()).toBe(false)
    expect(moat.stats.configReloadFailures).toBe(2)
    expect(moat.policy.generation).toBe(2)
    expect(moat.config.limits.maxPacketSize).toBe(1024)
    // The running (1 KiB) policy still holds for a new client.
    const id = uid('kept')
    const raw = await rawSession(moat.address().port, id)
    raw.send(publish(`${id}/big`, 2048))
    await raw.closed
    await broker.clientGone(id)
    await expect.poll(() => broker.received(id)).toEqual(['connect'])
  })
})
