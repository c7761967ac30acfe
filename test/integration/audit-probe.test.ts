/**
 * `moat audit --target`: the active probe against real targets. A bare Mosquitto that admits
 * anyone (every open-broker finding, and nothing left behind on it), a Mosquitto that only knows a
 * default password, the same Mosquitto behind Moat with a strict policy (none of them, and the
 * broker never saw the probe), TLS listeners that do and do not accept TLS 1.0/1.1, an address
 * where nothing listens, and the real CLI (`node dist/cli.js audit --target`).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { Aedes } from 'aedes'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Finding, Report } from '../../src/audit/finding.js'
import { probeTarget, type ProbeOptions } from '../../src/audit/probe.js'
import type { Moat } from '../../src/moat.js'
import { aclFrom } from '../helpers/acl.js'
import { mosquittoPasswd } from '../helpers/auth.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connectWithInbox, uid } from '../helpers/clients.js'
import { passwordAuth, startMoat } from '../helpers/moat.js'
import { freePort, startMosquitto, type MosquittoProcess } from '../helpers/mosquitto.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

function options(port: number, extra: Partial<ProbeOptions> = {}): ProbeOptions {
  return { host: '127.0.0.1', port, tls: false, ca: null, servername: null, timeoutMs: 5000, ...extra }
}

function byId(report: Report): Map<string, Finding> {
  return new Map(report.findings.map((f) => [f.id, f]))
}

/** The ids of findings that say the target is open (everything but info). */
const openBrokerIds = ['anonymous-access', 'default-credentials', 'subscribe-all', 'subscribe-sys', 'publish-anywhere', 'client-id-wildcards', 'oversized-packet']

describe('probe of a bare Mosquitto that admits anonymous clients', () => {
  let broker: MosquittoProcess
  let report: Report

  beforeAll(async () => {
    broker = await startMosquitto()
    report = await probeTarget(options(broker.port))
  })

  afterAll(async () => {
    await broker?.stop()
  })

  it('finds anonymous access, # and $SYS/# granted, publishing anywhere, and names the target', () => {
    const found = byId(report)
    const where = `mqtt://127.0.0.1:${broker.port}`
    expect(report.subject).toBe(where)
    expect(found.get('anonymous-access')).toMatchObject({ severity: 'critical', where })
    expect(found.get('subscribe-all')).toMatchObject({ severity: 'high', where })
    expect(found.get('subscribe-sys')).toMatchObject({ severity: 'medium', where })
    expect(found.get('publish-anywhere')).toMatchObject({ severity: 'high', where })
    expect(found.get('plaintext-listener')).toMatchObject({ severity: 'info', where })
    // Anonymous access was accepted, so no password was tried.
    expect(found.has('default-credentials')).toBe(false)
    for (const f of report.findings) {
      expect(f.risk.length).toBeGreaterThan(0)
      expect(f.fix.length).toBeGreaterThan(0)
    }
  })

  it("finds what Mosquitto 2.0 really does: it accepts the client id 'probe+#' and waits for a 256 MiB packet", async () => {
    const found = byId(report)
    expect(found.get('client-id-wildcards')).toMatchObject({ severity: 'medium' })
    expect(found.get('oversized-packet')).toMatchObject({ severity: 'medium' })
    // The broker's own record: the wildcard client id connected.
    await broker.waitForLog(/New client connected from .* as probe\+#/)
  })

  it('closes every connection it opened and leaves nothing retained under moat-audit/', async () => {
    // The oversized-packet connection is the last one the probe opens and closes.
    await broker.waitForLog(/^Client moat-audit-\S+-big (closed its connection|disconnected)/)
    const connected = broker.logs.filter((l) => /New client connected from .* as moat-audit-|as probe\+#/.test(l)).length
    expect(connected).toBeGreaterThanOrEqual(3)
    await expect.poll(() => broker.logs.filter((l) => /^Client (moat-audit-|probe\+#)\S* (closed its connection|disconnected)/.test(l)).length).toBe(connected)

    const { client, inbox } = await connectWithInbox(broker.port)
    try {
      await client.subscribeAsync('moat-audit/#', { qos: 1 })
      // A retained message would arrive before the marker published after the subscription.
      const marker = `moat-audit/${uid('marker')}`
      await client.publishAsync(marker, 'marker', { qos: 1 })
      const [first] = await inbox.waitFor(1)
      expect(first!.topic).toBe(marker)
      expect(first!.packet.retain).toBe(false)
    } finally {
      await client.endAsync()
    }
  })

  it('the CLI prints the findings as JSON and exits 4', async () => {
    const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'audit', '--target', `127.0.0.1:${broker.port}`, '--json'], { cwd: root })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d })
    const [code] = await once(child, 'close') as [number | null]
    expect(code).toBe(4)
    const parsed = JSON.parse(stdout) as { subject: string; findings: Finding[] }
    expect(parsed.subject).toBe(`mqtt://127.0.0.1:${broker.port}`)
    expect(parsed.findings[0]).toMatchObject({ id: 'anonymous-access', severity: 'critical' })
    expect(parsed.findings.map((f) => f.id)).toEqual(expect.arrayContaining(['subscribe-all', 'subscribe-sys', 'publish-anywhere']))
  })
})

describe('probe of a Mosquitto that refuses anonymous clients but knows a default password', () => {
  let broker: MosquittoProcess
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moat-audit-probe-'))
    mosquittoPasswd(join(dir, 'passwd'), { mosquitto: 'mosquitto' })
    broker = await startMosquitto({ allowAnonymous: false, config: [`password_file ${join(dir, 'passwd')}`, `user ${userInfo().username}`] })
  })

  afterAll(async () => {
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('finds the default credentials, stops there, and probes with that session', async () => {
    const report = await probeTarget(options(broker.port))
    const found = byId(report)
    expect(found.has('anonymous-access')).toBe(false)
    expect(found.get('default-credentials')).toMatchObject({ severity: 'critical', title: expect.stringContaining('mosquitto/mosquitto') })
    expect(found.get('subscribe-all')).toMatchObject({ severity: 'high' })
    expect(found.get('publish-anywhere')).toMatchObject({ severity: 'high' })
    // The broker's record: anonymous refused, then the list tried in order up to mosquitto/mosquitto
    // (its log is in order, so every refusal is in once the accepted login is). Mosquitto logs a
    // refused client as <unknown>: it takes the id only once the CONNECT passes.
    await broker.waitForLog(/New client connected from .* as moat-audit-\S+ .*u'mosquitto'/)
    const refusals = broker.logs.filter((l) => /^Client <unknown> disconnected, not authori[sz]ed/.test(l)).length
    expect(refusals).toBe(4) // anonymous, admin/admin, admin/password, guest/guest
  })
})

describe('probe of a Mosquitto that caps the packet size', () => {
  let broker: MosquittoProcess

  beforeAll(async () => {
    broker = await startMosquitto({ config: ['max_packet_size 65536'] })
  })

  afterAll(async () => {
    await broker?.stop()
  })

  it('finds no oversized-packet problem: the broker hangs up on the 256 MiB header', async () => {
    const found = byId(await probeTarget(options(broker.port)))
    expect(found.has('oversized-packet')).toBe(false)
    expect(found.get('anonymous-access')).toMatchObject({ severity: 'critical' })
    // The broker's side: it dropped the oversized client itself.
    await broker.waitForLog(/^Client moat-audit-\S+-big disconnected/)
  })
})

describe('probe of the same Mosquitto behind Moat with a strict policy', () => {
  let broker: MosquittoProcess
  let moat: Moat
  let report: Report

  beforeAll(async () => {
    broker = await startMosquitto()
    moat = await startMoat(broker, {
      auth: await passwordAuth(['alice']),
      acl: aclFrom([{ allow: 'all', topic: 'devices/alice/#' }]),
    })
    report = await probeTarget(options(moat.address().port))
  })

  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('finds none of the open-broker findings: the probe gets no session and the oversized packet is refused at once', () => {
    const ids = report.findings.map((f) => f.id)
    for (const id of openBrokerIds) expect(ids).not.toContain(id)
    expect(byId(report).get('no-session')).toMatchObject({ severity: 'info' })
    expect(report.findings.every((f) => f.severity === 'info')).toBe(true)
  })

  it('the broker behind Moat never saw a probe connection', async () => {
    // A client that does get in shows the broker's log is live; no probe client appears before it.
    const { client } = await connectWithInbox(moat.address().port, { username: 'alice', password: 'pw', clientId: 'alice-after-probe' })
    await client.endAsync()
    await broker.waitForLog(/as alice-after-probe/)
    expect(broker.logs.filter((l) => /moat-audit|probe\+#/.test(l))).toEqual([])
  })
})

describe('probe of Moat admitting anonymous clients under a strict ACL', () => {
  let broker: MosquittoProcess
  let moat: Moat

  beforeAll(async () => {
    broker = await startMosquitto()
    moat = await startMoat(broker, { auth: { anonymous: true }, acl: aclFrom([{ allow: 'all', topic: 'devices/alice/#' }]) })
  })

  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('finds the anonymous access, but not the wildcard client id (refused), and the session may not read # or $SYS/# nor write its probe topic', async () => {
    const found = byId(await probeTarget(options(moat.address().port)))
    expect(found.get('anonymous-access')).toMatchObject({ severity: 'critical' })
    expect(found.has('subscribe-all')).toBe(false)
    expect(found.has('subscribe-sys')).toBe(false)
    expect(found.has('publish-anywhere')).toBe(false)
    expect(found.has('oversized-packet')).toBe(false)
    // Moat acknowledged the denied QoS 1 publish (3.1.1 has no refusal code) and no subscription
    // was granted to read it back: reported as unverified, not as a finding.
    expect(found.get('publish-unverified')).toMatchObject({ severity: 'info' })
    // Moat refuses a client id holding + or # whatever auth.clientId says (virtual patch of
    // CVE-2017-7650, src/checks/virtual-patches.ts): nothing to report.
    expect(found.has('client-id-wildcards')).toBe(false)
    // The broker's side: no probe subscription and no probe message reached it.
    const { client } = await connectWithInbox(moat.address().port, { clientId: 'after-acl-probe' })
    await client.endAsync()
    await broker.waitForLog(/as after-acl-probe/)
    expect(broker.logs.filter((l) => /moat-audit-\S+ (1 #|1 \$SYS)|Received PUBLISH from moat-audit/.test(l))).toEqual([])
  })
})

describe('probe over TLS', () => {
  let certs: TestCerts

  beforeAll(() => {
    certs = makeTestCerts([])
  })

  afterAll(() => {
    certs?.cleanup()
  })

  it('reports TLS 1.0 and 1.1 as high when the listener accepts them', async () => {
    // Aedes over a node:tls server that still accepts TLS 1.0 (security level 0 for its ciphers).
    const aedes = await Aedes.createBroker()
    const server = tls.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, aedes.handle)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      const report = await probeTarget(options((server.address() as AddressInfo).port, { tls: true, ca: certs.ca, servername: 'localhost' }))
      const found = byId(report)
      expect(report.subject).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/)
      expect(found.get('tls-1.0-accepted')).toMatchObject({ severity: 'high' })
      expect(found.get('tls-1.1-accepted')).toMatchObject({ severity: 'high' })
      expect(found.has('tls-certificate-untrusted')).toBe(false)
      expect(found.has('plaintext-listener')).toBe(false)
      expect(found.get('anonymous-access')).toMatchObject({ severity: 'critical' })
    } finally {
      server.close()
      await new Promise<void>((resolve) => aedes.close(() => resolve()))
    }
  })

  it('finds no old TLS version on a Mosquitto TLS listener (TLS 1.2+), and flags a certificate it cannot verify', async () => {
    const broker = await startMosquitto({ listenerLines: [`cafile ${certs.ca}`, `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`, `user ${userInfo().username}`] })
    try {
      const verified = byId(await probeTarget(options(broker.port, { tls: true, ca: certs.ca, servername: 'localhost' })))
      expect(verified.has('tls-1.0-accepted')).toBe(false)
      expect(verified.has('tls-1.1-accepted')).toBe(false)
      expect(verified.has('tls-certificate-untrusted')).toBe(false)
      expect(verified.get('anonymous-access')).toMatchObject({ severity: 'critical' })

      const unverified = byId(await probeTarget(options(broker.port, { tls: true })))
      expect(unverified.get('tls-certificate-untrusted')).toMatchObject({ severity: 'low' })
    } finally {
      await broker.stop()
    }
  })
})

describe('probe of something that is not an MQTT broker', () => {
  it('throws a clear error when nothing listens', async () => {
    const port = await freePort()
    await expect(probeTarget(options(port))).rejects.toThrow(`cannot probe 127.0.0.1:${port}: connection refused`)
  })

  it('the CLI prints the reason and exits 1 when nothing listens', async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'audit', '--target', `127.0.0.1:${port}`], { cwd: root })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d })
    child.stderr.on('data', (d: Buffer) => { stderr += d })
    const [code] = await once(child, 'close') as [number | null]
    expect(code).toBe(1)
    expect(stdout).toBe('')
    expect(stderr).toContain(`cannot probe 127.0.0.1:${port}: connection refused`)
  })

  it('throws a clear error when the target accepts the connection but never answers the CONNECT', async () => {
    // Reads (and drops) what it gets, answers nothing.
    const sockets = new Set<net.Socket>()
    let closed = 0
    const server = net.createServer((s) => {
      sockets.add(s)
      s.resume()
      s.on('close', () => { closed++ })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    try {
      await expect(probeTarget(options(port, { timeoutMs: 500 }))).rejects.toThrow(`mqtt://127.0.0.1:${port} never answered an MQTT CONNECT with a CONNACK`)
      // One connection, closed by the probe.
      expect(sockets.size).toBe(1)
      await expect.poll(() => closed).toBe(1)
    } finally {
      for (const s of sockets) s.destroy()
      server.close()
    }
  })
})
