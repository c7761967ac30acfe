/**
 * A real Prometheus (Debian's `prometheus` package) scrapes a real Moat while scripted traffic
 * runs through it, and then answers every query of the Grafana dashboard, and of its job and
 * instance variables, with data: the panels work, not only parse. Prometheus scrapes OpenMetrics;
 * the text format read between its scrapes keeps every name. Without the binary this is skipped
 * with a notice, never under CI=true (.ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generate } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aclFrom } from '../helpers/acl.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { makeTestCerts } from '../helpers/certs.js'
import { configWith, listener, listenerTls, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'
import { limitsFrom, passwordAuth } from '../helpers/moat.js'
import { dial } from '../helpers/resumption.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const hasPrometheus = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0
if (!hasPrometheus && process.env.CI === 'true') throw new Error('CI=true but prometheus is not installed (.ci/run installs it)')
if (!hasPrometheus) console.warn('prometheus not installed: skipping the live dashboard check (apt-get install prometheus)')

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Polls `probe` until it returns true (hooks cannot use expect.poll). */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

interface Panel { title: string; targets?: Array<{ expr: string }>; panels?: Panel[] }
interface Variable { name: string; query?: { query: string } }

describe.runIf(hasPrometheus)('a real Prometheus scraping Moat', () => {
  let broker: TestBroker
  let m: LoggedMoat
  let prometheus: ChildProcess
  let api: string
  let admin: string
  let certs: ReturnType<typeof makeTestCerts>
  /** A text scrape taken before Prometheus first scraped. */
  let textBefore: string

  async function login(user: string, password: string): Promise<RawClient> {
    const raw = new RawClient(m.moat.address('edge').port, 4)
    await raw.connected()
    raw.send(connectPacket(uid(user), 4, { username: user, password: Buffer.from(password) }))
    await raw.nextPacket()
    return raw
  }

  /** Traffic that touches every panel: logins good and bad, a ban, a failing backend, publishes allowed and denied, a malformed packet, a refused connection, TLS full and resumed. */
  async function traffic(): Promise<void> {
    const alice = await login('alice', 'pw')
    alice.send(generate({ cmd: 'publish', topic: 'telemetry/a', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    alice.send(generate({ cmd: 'publish', topic: 'firmware/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    alice.send(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'telemetry/#', qos: 0 }] }))
    await alice.nextPacket()
    for (let i = 0; i < 3; i++) (await login('eve', 'wrong')).destroy() // eve is banned after 2
    ;(await login('unknown-user', 'x')).destroy() // not in the file: the http backend is asked, and is down
    // A SUBSCRIBE whose filter is not UTF-8: a decode error, and the client is closed.
    const bad = await login('alice', 'pw')
    bad.send(Buffer.from([0x82, 0x07, 0x00, 0x07, 0x00, 0x02, 0x61, 0xff, 0x00]))
    await bad.closed
    // A connection without the PROXY header the `lb` listener requires: refused before MQTT.
    const raw = new RawClient(m.moat.address('lb').port, 4)
    await raw.connected()
    raw.send(generate(connectPacket(uid('nolb'), 4)))
    await raw.closed
    // A TLS handshake, and one that resumes its session: the resumption panel.
    const first = await dial(m.moat.address('secure').port, readFileSync(certs.ca))
    await dial(m.moat.address('secure').port, readFileSync(certs.ca), { session: first.session! })
    alice.destroy()
  }

  async function query(expr: string): Promise<unknown[]> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = await res.json() as { status: string; error?: string; data: { result: unknown[] } }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
    return body.data.result
  }

  beforeAll(async () => {
    broker = await startBroker('aedes')
    const closed = await freePort() // nothing listens here: the http backend fails
    const users = await passwordAuth(['alice', 'eve'])
    certs = makeTestCerts()
    m = await startMoatWith(configWith(broker, [
      listener('edge', 'mqtt'),
      listener('lb', 'mqtt', { proxyProtocol: true, trustedProxies: ['127.0.0.1/32', '::1'] }),
      listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key) }),
    ], {
      admin: { host: '127.0.0.1', port: 0 },
      auth: {
        backends: [...(users.backends as unknown[]), { type: 'http', url: `http://127.0.0.1:${closed}/auth`, timeout: '1s', cache: false }],
        lockout: { maxFailures: 2, window: '1m', ban: '1m', per: ['username'] },
      },
      acl: aclFrom({ rules: [{ deny: 'publish', topic: 'firmware/#' }, { allow: 'all', topic: '#' }], shadow: { rules: [{ allow: 'all', topic: 'telemetry/#' }] } }),
      limits: limitsFrom({ messageRate: '100000/s' }),
    }))
    admin = `http://127.0.0.1:${m.moat.adminAddress()!.port}/metrics`
    textBefore = await (await fetch(admin)).text()
    const dir = mkdtempSync(join(tmpdir(), 'moat-prometheus-'))
    const port = await freePort()
    api = `http://127.0.0.1:${port}`
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      `  - { job_name: moat, static_configs: [{ targets: ['127.0.0.1:${m.moat.adminAddress()!.port}'] }] }`,
    ].join('\n'))
    prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' })
    await until('prometheus to be ready', async () => (await fetch(`${api}/-/ready`)).status === 200)
    await traffic()
    // A few scrapes, with traffic between them, so that rates have something to work on.
    await until('three scrapes', async () => (await query('count_over_time(up{job="moat"}[1m]) >= 3')).length === 1)
    await traffic()
    await until('five scrapes', async () => (await query('count_over_time(up{job="moat"}[1m]) >= 5')).length === 1)
  }, 90_000)

  afterAll(async () => {
    prometheus?.kill('SIGTERM')
    await m?.moat.shutdown(0)
    await broker?.stop()
    certs?.cleanup()
  })

  /** The families a text scrape declares, with their types (samples come and go with the traffic). */
  function families(text: string): string[] {
    return text.split('\n').filter((l) => l.startsWith('# TYPE ')).sort()
  }

  it('answers every query of the dashboard, for the job and instance its variables find, with data', async () => {
    const dashboard = JSON.parse(readFileSync(join(root, 'grafana/dashboards/moat.json'), 'utf8')) as { panels: Panel[]; templating: { list: Variable[] } }
    // The variables' label_values(metric, label) queries, asked as Grafana asks them.
    const values = async (variable: string, scope: string): Promise<string[]> => {
      const query = dashboard.templating.list.find((v) => v.name === variable)!.query!.query
      const [, metric, label] = /^label_values\((.+), (\w+)\)$/.exec(query)!
      const res = await fetch(`${api}/api/v1/label/${label}/values?match[]=${encodeURIComponent(metric!.replace('$job', scope))}`)
      return (await res.json() as { data: string[] }).data
    }
    const jobs = await values('job', '')
    expect(jobs).toEqual(['moat'])
    const instances = await values('instance', 'moat')
    expect(instances).toEqual([`127.0.0.1:${m.moat.adminAddress()!.port}`])
    const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr.replaceAll('$job', jobs[0]!).replaceAll('$instance', instances[0]!) })))
    expect(targets.length).toBeGreaterThan(20)
    const empty: string[] = []
    for (const { title, expr } of targets) if ((await query(expr)).length === 0) empty.push(`${title}: ${expr}`)
    expect(empty).toEqual([])
    // And the up metric says the scrape works at all.
    expect(await query('up{job="moat"} == 1')).toHaveLength(1)
  })

  it('stores counters under their _total names, and its OpenMetrics scrapes leave the text format as it was', async () => {
    expect(await query('moat_config_reloads_total{job="moat"}')).toHaveLength(2)
    expect(await query('{__name__="moat_config_reloads",job="moat"}')).toHaveLength(0)
    const after = families(await (await fetch(admin)).text())
    expect(after).toContain('# TYPE moat_config_reloads_total counter')
    expect(after).toEqual(families(textBefore))
  })
})
