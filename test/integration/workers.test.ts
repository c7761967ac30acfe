/**
 * `workers: 2` as a user runs it: node dist/cli.js (built by test/global-setup.ts) forks two
 * workers that share the listener ports, in front of a real broker, with real clients over TCP,
 * TLS, WebSocket and a PROXY-protocol listener. One /metrics sums both workers, a SIGHUP reaches
 * every worker, a killed worker comes back, and SIGTERM drains them all and exits 0.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MqttClient } from 'mqtt'
import { generate, type IDisconnectPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type ProtocolLevel, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts } from '../helpers/certs.js'
import { connect, connectPacket, Inbox, RawClient, rawSession, shortId } from '../helpers/clients.js'
import { proxyV1 } from '../helpers/listeners.js'
import { MoatCluster } from '../helpers/moat-cluster.js'

const kind = brokerKinds()[0]!
const root = fileURLToPath(new URL('../..', import.meta.url))
const cli = join(root, 'dist/cli.js')
/** Starting three node processes on a busy machine takes a while. */
const SLOW = 120_000

describe(`workers: 2 in front of ${kind}`, () => {
  let broker: TestBroker
  let witness: MqttClient
  let seen: Inbox
  let moat: MoatCluster
  let file: string
  let certs: ReturnType<typeof makeTestCerts>
  const version: ProtocolLevel = kind === 'mosquitto' ? 5 : 4

  /** Writes the config whole (a temporary file renamed over it): the primary's file watch never sees half a file. */
  function writePolicy(rules: string[], extra: string[] = []): void {
    writeFileSync(`${file}.tmp`, [
      'workers: 2',
      'listeners:',
      '  - { name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }',
      `  - { name: secure, protocol: mqtts, host: 127.0.0.1, port: 0, tls: { cert: ${certs.server.cert}, key: ${certs.server.key} } }`,
      '  - { name: web, protocol: ws, host: 127.0.0.1, port: 0, path: /mqtt }',
      '  - { name: proxied, protocol: mqtt, host: 127.0.0.1, port: 0, proxyProtocol: true, trustedProxies: [127.0.0.1/32] }',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'admin: { host: 127.0.0.1, port: 0 }',
      'auth: { anonymous: true }',
      'shutdown: { gracePeriod: 60s }',
      'acl:',
      '  rules:',
      ...rules.map((r) => `    - ${r}`),
      ...extra,
    ].join('\n') + '\n')
    renameSync(`${file}.tmp`, file)
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    certs = makeTestCerts()
    file = join(mkdtempSync(join(tmpdir(), 'moat-workers-')), 'moat.yaml')
    writePolicy(['{ name: all, allow: all, topic: "#" }'])
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('w/#', { qos: 1 })
    moat = await MoatCluster.start(file)
  }, SLOW)

  afterAll(async () => {
    await moat?.kill()
    await witness?.endAsync()
    await broker?.stop()
  })

  it('serves clients through both workers, on every listener kind, and one /metrics sums them', async () => {
    // Both workers listen on the same ports (a worker's log lines may reach the pipe after the primary's 'ready').
    for (const listener of ['edge', 'secure', 'web', 'proxied']) {
      await expect.poll(() => moat.all({ event: 'listening', listener }).map((l) => l.worker).sort(), { timeout: SLOW }).toEqual([1, 2])
      const ports = new Set(moat.all({ event: 'listening', listener }).map((l) => l.port))
      expect(ports.size, listener).toBe(1)
    }
    // Each worker keeps its fleet-wide limits in the primary's store.
    expect(moat.all({ event: 'worker_ready' }).map((l) => l.store)).toEqual(['workers', 'workers'])
    const topics: string[] = []
    // Six plain TCP clients, one after the other: node:cluster hands connections round-robin.
    for (let i = 0; i < 6; i++) {
      const client = await connect(moat.port('edge'))
      const topic = `w/tcp/${i}/${shortId()}`
      await client.publishAsync(topic, 'x', { qos: 1 })
      topics.push(topic)
      await client.endAsync()
    }
    // One each over TLS and WebSocket.
    const tls = await connect(moat.port('secure'), { protocol: 'mqtts', ca: readFileSync(certs.ca), servername: 'localhost' } as never)
    await tls.publishAsync('w/tls', 'x', { qos: 1 })
    topics.push('w/tls')
    await tls.endAsync()
    const ws = await connect(0, { protocol: 'ws', host: '127.0.0.1', port: moat.port('web'), path: '/mqtt' } as never)
    await ws.publishAsync('w/ws', 'x', { qos: 1 })
    topics.push('w/ws')
    await ws.endAsync()
    // And one behind a PROXY v1 header: the worker reads the header and serves the client.
    const proxied = new RawClient(moat.port('proxied'), 4)
    await proxied.connected()
    proxied.send(proxyV1('203.0.113.9', 40000))
    proxied.send(connectPacket(shortId(), 4))
    expect(await proxied.nextPacket(0, SLOW)).toMatchObject({ cmd: 'connack', returnCode: 0 })
    proxied.send(generate({ cmd: 'publish', topic: 'w/proxied', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false }))
    expect(await proxied.nextPacket(1, SLOW)).toMatchObject({ cmd: 'puback', messageId: 1 })
    topics.push('w/proxied')
    proxied.destroy()

    for (const topic of topics) await seen.waitForTopic(topic, SLOW)
    // One scrape, summed over both workers: every publish and every connection, once.
    await expect.poll(() => moat.value('moat_packets_total{direction="client_to_broker",packet_type="publish"}'), { timeout: SLOW }).toBe(topics.length)
    const accepted = (await moat.value('moat_connections_accepted_total{listener="edge"}'))
      + (await moat.value('moat_connections_accepted_total{listener="secure"}'))
      + (await moat.value('moat_connections_accepted_total{listener="web"}'))
      + (await moat.value('moat_connections_accepted_total{listener="proxied"}'))
    expect(accepted).toBe(topics.length)
    // Both workers served some of them.
    const one = await moat.value('moat_worker_connections_accepted_total{worker="1"}')
    const two = await moat.value('moat_worker_connections_accepted_total{worker="2"}')
    expect(one).toBeGreaterThan(0)
    expect(two).toBeGreaterThan(0)
    expect(one + two).toBe(topics.length)
    expect(await moat.value('moat_workers{state="running"}')).toBe(2)
    // One policy, reported once (not once per worker).
    expect((await moat.metrics()).split('\n').filter((l) => l.startsWith('moat_policy_info{'))).toHaveLength(1)
    const ready = await fetch(`http://127.0.0.1:${moat.adminPort}/readyz`)
    expect(ready.status).toBe(200)
    const health = await fetch(`http://127.0.0.1:${moat.adminPort}/healthz`)
    expect(health.status).toBe(200)
    // The same sums in OpenMetrics (what Prometheus asks for): counters named as OpenMetrics wants.
    const om = await (await fetch(`http://127.0.0.1:${moat.adminPort}/metrics`, { headers: { accept: 'application/openmetrics-text; version=1.0.0' } })).text()
    expect(om).toContain('# TYPE moat_packets counter')
    expect(om).toContain(`moat_packets_total{direction="client_to_broker",packet_type="publish"} ${topics.length}`)
    expect(om).not.toContain('_total_total')
    expect(om.endsWith('# EOF\n')).toBe(true)
  }, SLOW)

  it('a SIGHUP reaches every worker: a newly forbidden topic is refused on connections each worker holds, and the broker gets nothing', async () => {
    // Hold connections until both workers have some.
    const held: Array<{ id: string; raw: RawClient }> = []
    const open = async (): Promise<boolean> => (await moat.value('moat_worker_sessions_open{worker="1"}')) > 0 && (await moat.value('moat_worker_sessions_open{worker="2"}')) > 0
    while (held.length < 4 || !(await open())) {
      expect(held.length).toBeLessThan(20)
      const id = shortId()
      held.push({ id, raw: await rawSession(moat.port('edge'), id, version) })
    }
    writePolicy([
      '{ name: secret, deny: all, topic: "w/secret/#", onDeny: disconnect }',
      '{ name: all, allow: all, topic: "#" }',
    ])
    moat.child.kill('SIGHUP')
    // (The primary also watches the file: its poll may reload once more, which changes nothing here.)
    await expect.poll(() => new Set(moat.all({ event: 'config_reload', outcome: 'success' }).map((l) => l.worker)), { timeout: SLOW }).toEqual(new Set([1, 2]))
    expect(await moat.value('moat_config_generation')).toBeGreaterThanOrEqual(2)
    for (const { id, raw } of held) {
      raw.send(generate({ cmd: 'publish', topic: `w/secret/${id}`, payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false }, { protocolVersion: version }))
      const answer = await raw.nextPacket(undefined, SLOW)
      // 5.0: DISCONNECT 0x87 (not authorized); 3.1.1 has no DISCONNECT from the server: closed.
      if (version === 5) expect(answer as IDisconnectPacket).toMatchObject({ cmd: 'disconnect', reasonCode: 0x87 })
      else expect(answer).toBeNull()
      await raw.closed
      await broker.clientGone(id, SLOW)
      expect(broker.received(id)).not.toContain(`publish w/secret/${id}`)
    }
    expect(seen.messages.filter((m) => m.topic.startsWith('w/secret/'))).toEqual([])
    // Allowed topics still pass, through both workers.
    for (let i = 0; i < 2; i++) {
      const client = await connect(moat.port('edge'))
      await client.publishAsync(`w/after-reload/${i}`, 'x', { qos: 1 })
      await seen.waitForTopic(`w/after-reload/${i}`, SLOW)
      await client.endAsync()
    }
  }, SLOW)

  it('an invalid file reaches no worker: the primary refuses it and every worker keeps its policy', async () => {
    writePolicy(['{ name: all, allow: all, topic: "#" }'], ['bogus: 1'])
    moat.child.kill('SIGHUP')
    // Refused by the primary (on SIGHUP, and maybe once more by its file watch).
    await expect.poll(() => moat.value('moat_config_reloads_total{outcome="failure"}'), { timeout: SLOW }).toBeGreaterThanOrEqual(1)
    await expect.poll(() => moat.find({ event: 'config_reload', outcome: 'failure', role: 'primary' })?.error, { timeout: SLOW }).toMatch(/bogus/)
    // The refused file never reached a worker: neither logged a reload failure of its own.
    expect(moat.lines.filter((l) => l.event === 'config_reload' && l.outcome === 'failure' && l.worker !== undefined)).toEqual([])
    // Still the reloaded policy: the secret topic is still refused.
    const id = shortId()
    const raw = await rawSession(moat.port('edge'), id, version)
    raw.send(generate({ cmd: 'publish', topic: `w/secret/${id}`, payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false }, { protocolVersion: version }))
    await raw.closed
    await broker.clientGone(id, SLOW)
    expect(broker.received(id)).not.toContain(`publish w/secret/${id}`)
    writePolicy(['{ name: secret, deny: all, topic: "w/secret/#", onDeny: disconnect }', '{ name: all, allow: all, topic: "#" }'])
  }, SLOW)

  it('restarts a worker that is killed, and serves through it again', async () => {
    const before = moat.workerPid(1)
    process.kill(before, 'SIGKILL')
    await expect.poll(() => moat.find({ event: 'worker_exit', worker: 1, signal: 'SIGKILL' }), { timeout: SLOW }).toBeDefined()
    await expect.poll(() => moat.workerPid(1), { timeout: SLOW }).not.toBe(before)
    await expect.poll(() => moat.value('moat_workers{state="running"}'), { timeout: SLOW }).toBe(2)
    expect(await moat.value('moat_worker_restarts_total')).toBe(1)
    // The new worker 1 accepts connections again (its own count restarts from 0).
    for (let i = 0; i < 6 && (await moat.value('moat_worker_connections_accepted_total{worker="1"}')) === 0; i++) {
      const client = await connect(moat.port('edge'))
      await client.publishAsync(`w/restarted/${i}`, 'x', { qos: 1 })
      await seen.waitForTopic(`w/restarted/${i}`, SLOW)
      await client.endAsync()
    }
    expect(await moat.value('moat_worker_connections_accepted_total{worker="1"}')).toBeGreaterThan(0)
  }, SLOW)

  it('SIGTERM: every worker drains (open sessions keep working for the grace period), then exit 0', async () => {
    const clients: Array<{ client: MqttClient; id: string }> = []
    while (clients.length < 2 || (await moat.value('moat_worker_sessions_open{worker="1"}')) === 0 || (await moat.value('moat_worker_sessions_open{worker="2"}')) === 0) {
      expect(clients.length).toBeLessThan(20)
      const id = shortId()
      clients.push({ client: await connect(moat.port('edge'), { clientId: id }), id })
    }
    moat.child.kill('SIGTERM')
    await expect.poll(() => moat.all({ event: 'shutdown' }).filter((l) => l.worker !== undefined).map((l) => l.worker).sort(), { timeout: SLOW }).toEqual([1, 2])
    // Draining, not closed: held sessions still reach the broker.
    for (const { client, id } of clients) {
      await client.publishAsync(`w/draining/${id}`, 'x', { qos: 1 })
      await seen.waitForTopic(`w/draining/${id}`, SLOW)
    }
    for (const { client } of clients) await client.endAsync()
    expect(await moat.exited).toEqual({ code: 0, signal: null })
    expect(moat.all({ event: 'worker_stopped' }).map((l) => l.worker).sort()).toEqual([1, 2])
  }, SLOW)
})

describe('workers: when workers cannot run', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'moat-workers-fail-'))
  })

  it('a worker that cannot start stops Moat at once: exit 1 with its reason', async () => {
    const taken = net.createServer().listen(0, '127.0.0.1')
    await once(taken, 'listening')
    const port = (taken.address() as net.AddressInfo).port
    const file = join(dir, 'taken.yaml')
    writeFileSync(file, [
      'workers: 2',
      `listeners: [{ name: taken, protocol: mqtt, host: 127.0.0.1, port: ${port} }]`,
      'upstream: { host: 127.0.0.1, port: 1 }',
      'auth: { anonymous: true }',
    ].join('\n') + '\n')
    const moat = new MoatCluster(spawn(process.execPath, [cli, '--config', file], { cwd: root }))
    try {
      expect(await moat.exited).toEqual({ code: 1, signal: null })
      expect(moat.output).toMatch(new RegExp(`moat: listener 'taken' cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`))
    } finally {
      taken.close()
    }
  }, SLOW)

  it('gives up and exits 1 when workers keep crashing', async () => {
    const file = join(dir, 'crash.yaml')
    writeFileSync(file, [
      'workers: 2',
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      'upstream: { host: 127.0.0.1, port: 1 }',
      'auth: { anonymous: true }',
    ].join('\n') + '\n')
    const moat = await MoatCluster.start(file)
    try {
      // Three rounds of killing both workers: six crashes, past the limit of five in a minute.
      for (let round = 0; round < 3 && moat.find({ event: 'workers_crashing' }) === undefined; round++) {
        const readyBefore = moat.all({ event: 'worker_ready' }).length
        for (const id of [1, 2]) {
          try {
            process.kill(moat.workerPid(id), 'SIGKILL')
          } catch { /* already gone: the primary gave up after the first kill of this round */ }
        }
        if (round < 2) {
          // Both come back (or the primary has given up already).
          await expect.poll(() => moat.all({ event: 'worker_ready' }).length >= readyBefore + 2 || moat.find({ event: 'workers_crashing' }) !== undefined, { timeout: SLOW }).toBe(true)
        }
      }
      expect(await moat.exited).toEqual({ code: 1, signal: null })
      expect(moat.find({ event: 'workers_crashing' })).toMatchObject({ code: 'MOAT_ERR_WORKER' })
      expect(moat.all({ event: 'worker_exit' }).filter((l) => l.signal === 'SIGKILL').length).toBeGreaterThanOrEqual(5)
    } finally {
      if (moat.child.exitCode === null && moat.child.signalCode === null) moat.child.kill('SIGKILL')
    }
  }, SLOW)
})
