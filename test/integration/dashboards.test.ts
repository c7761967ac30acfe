/**
 * The Grafana dashboard and the Prometheus files, checked against what a live Moat exports: every
 * query names metrics Moat exports (a query on a metric that does not exist shows "No data"
 * forever, and an alert on it never fires), and every metric Moat exports, one process or the
 * primary of `workers: 2`, is on the dashboard or in the list of docs/operations.md that says why
 * not. The dashboard imports into any Grafana: no data source uid is written in it, and every
 * query is filtered by the `job` and `instance` variables. The rules pass `promtool check rules`
 * and their unit tests (`promtool test rules`), prometheus.yml passes `promtool check config` in a
 * checkout and finds its rules where the compose stack mounts them, and the stack passes
 * `docker-compose config`. promtool and docker-compose come from Debian's packages (prometheus,
 * docker-compose), which .ci/run installs; on a machine without them those checks are skipped with
 * a notice, never under CI=true.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeDevCerts } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'
import type { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { startMoat } from '../helpers/moat.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

interface Panel { title: string; type: string; targets?: Array<{ expr: string }>; panels?: Panel[] }
interface Dashboard { panels: Panel[]; templating: { list: Array<{ name: string; type: string; query: unknown }> } }

function dashboard(): Dashboard {
  return JSON.parse(readFileSync(`${root}/grafana/dashboards/moat.json`, 'utf8')) as Dashboard
}

function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = []
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `dashboard panel '${p.title}'`, expr: t.expr })
      walk(p.panels ?? [])
    }
  }
  walk(dashboard().panels)
  return out
}

function alertExpressions(): Array<{ where: string; expr: string }> {
  const rules = parse(readFileSync(`${root}/prometheus/alerts.yml`, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })))
}

/** Each use of one of Moat's metrics (its own, and Node's process metrics) in PromQL, with the matchers in its braces. */
const SELECTOR = /\b((?:moat|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?/g

/** Metric families an expression uses (histogram series mapped to their family). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(SELECTOR)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))
}

/** The families a live /metrics declares (its `# TYPE` lines). */
function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!)
}

/** The metrics docs/operations.md lists as not on the dashboard: the first column of the table under its heading. */
function listedAsNotOnDashboard(): string[] {
  const doc = readFileSync(`${root}/docs/operations.md`, 'utf8')
  const start = doc.indexOf('\n### Metrics not on the dashboard\n')
  expect(start, 'docs/operations.md has a section "### Metrics not on the dashboard"').toBeGreaterThan(0)
  const section = doc.slice(start + 1).split(/\n#{2,3} /)[0]!
  return section.split('\n').filter((l) => /^\| `/.test(l)).flatMap((l) => [...l.split('|')[1]!.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!))
}

function tool(name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
  if (!found && process.env.CI === 'true') throw new Error(`CI=true but ${name} is not installed (.ci/run installs it)`)
  if (!found) console.warn(`${name} not installed: skipping its check (apt-get install ${name === 'promtool' ? 'prometheus' : name})`)
  return found
}

/** Starting a primary and two workers on a busy machine takes a while. */
const SLOW = 120_000

describe('dashboards and alert rules', () => {
  let broker: TestBroker
  let moat: Moat
  let cluster: MoatCluster
  /** Every metric family a live Moat exports: one process, and the primary of `workers: 2`. */
  let exported: Set<string>

  beforeAll(async () => {
    broker = await startBroker('aedes')
    moat = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0 } })
    const file = join(mkdtempSync(join(tmpdir(), 'moat-dashboards-')), 'moat.yaml')
    writeFileSync(file, [
      'workers: 2',
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'admin: { host: 127.0.0.1, port: 0 }',
      'auth: { anonymous: true }',
    ].join('\n') + '\n')
    cluster = await MoatCluster.start(file)
    const single = await (await fetch(`http://127.0.0.1:${moat.adminAddress()!.port}/metrics`)).text()
    exported = new Set([...families(single), ...families(await cluster.metrics())])
  }, SLOW)
  afterAll(async () => {
    await cluster?.kill()
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('every PromQL expression names only metrics Moat exports', () => {
    const expressions = [...dashboardExpressions(), ...alertExpressions()]
    expect(expressions.length).toBeGreaterThan(20)
    const unknown = expressions.flatMap(({ where, expr }) => metricsIn(expr).filter((m) => !exported.has(m)).map((m) => `${where}: ${m}`))
    expect(unknown).toEqual([])
  })

  it('every metric Moat exports is on the dashboard, or listed in docs/operations.md with the reason it is not', () => {
    expect(exported).toContain('moat_workers') // the primary's own, beside the workers' merged
    expect(exported).toContain('process_cpu_seconds_total')
    const shown = new Set(dashboardExpressions().flatMap(({ expr }) => metricsIn(expr)))
    const listed = listedAsNotOnDashboard()
    expect(listed.length).toBeGreaterThan(5)
    expect([...exported].filter((m) => !shown.has(m) && !listed.includes(m))).toEqual([])
    // The list holds nothing stale: each name is exported, and not on the dashboard after all.
    expect(listed.filter((m) => !exported.has(m) || shown.has(m))).toEqual([])
  })

  it('names no data source: every panel, query and variable uses the ${datasource} variable', () => {
    const d = dashboard()
    const hardCoded: string[] = []
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) node.forEach((n, i) => walk(n, `${path}[${i}]`))
      if (node === null || typeof node !== 'object') return
      for (const [key, value] of Object.entries(node)) {
        const at = `${path}.${key}`
        if (key === 'datasource' && JSON.stringify(value) !== JSON.stringify({ type: 'prometheus', uid: '${datasource}' })) hardCoded.push(`${at}: ${JSON.stringify(value)}`)
        else if (key === 'uid' && path !== '' && value !== '${datasource}') hardCoded.push(`${at}: ${JSON.stringify(value)}`)
        walk(value, at)
      }
    }
    walk(d, '')
    expect(hardCoded).toEqual([])
    const variables = Object.fromEntries(d.templating.list.map((v) => [v.name, v]))
    expect(variables.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' })
    expect(variables.job).toMatchObject({ type: 'query', query: { query: 'label_values(moat_config_generation, job)' } })
    expect(variables.instance).toMatchObject({ type: 'query', query: { query: 'label_values(moat_config_generation{job=~"$job"}, instance)' } })
  })

  it('filters every panel query on the job and instance variables', () => {
    const expressions = dashboardExpressions()
    const unfiltered = expressions.flatMap(({ where, expr }) => [...expr.matchAll(SELECTOR)]
      .filter(([, , braces]) => braces === undefined || !braces.includes('job=~"$job"') || !braces.includes('instance=~"$instance"'))
      .map(([selector]) => `${where}: ${selector}`))
    expect(unfiltered).toEqual([])
    // Any other selector (`up{…}`, another exporter's metric) would escape the check above.
    const others = expressions.flatMap(({ where, expr }) => [...expr.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{/g)]
      .filter((m) => !/^(moat|process|nodejs)_/.test(m[1]!)).map((m) => `${where}: ${m[1]}`))
    expect(others).toEqual([])
  })

  it('the alert rules pass promtool, and so do their unit tests', () => {
    if (!tool('promtool')) return
    const out = execFileSync('promtool', ['check', 'rules', `${root}/prometheus/alerts.yml`], { encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS: \d+ rules found/)
    const tests = execFileSync('promtool', ['test', 'rules', 'prometheus/alerts.test.yml'], { cwd: root, encoding: 'utf8' })
    expect(tests).toMatch(/SUCCESS/)
  })

  it('prometheus.yml passes promtool in a checkout, and its rule files are where the compose stack mounts them', () => {
    const config = parse(readFileSync(`${root}/prometheus/prometheus.yml`, 'utf8')) as { rule_files: string[] }
    const compose = parse(readFileSync(`${root}/docker-compose.yml`, 'utf8')) as { services: { prometheus: { volumes: string[] } } }
    const mounts = new Map(compose.services.prometheus.volumes.map((v) => { const [from, to] = v.split(':'); return [to!, from!] }))
    // Prometheus reads rule files relative to its config file: in the container, beside /etc/prometheus/prometheus.yml.
    const configInContainer = [...mounts].find(([, from]) => from === './prometheus/prometheus.yml')?.[0]
    expect(configInContainer).toBe('/etc/prometheus/prometheus.yml')
    for (const rules of config.rule_files) {
      expect(mounts.get(posix.resolve(posix.dirname(configInContainer!), rules))).toBe(`./${posix.join('prometheus', rules)}`)
    }
    if (!tool('promtool')) return
    const out = execFileSync('promtool', ['check', 'config', 'prometheus/prometheus.yml'], { cwd: root, encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS: 1 rule files found/)
    expect(out).toMatch(/SUCCESS: \d+ rules found/)
    // From any directory, as an operator may run it.
    execFileSync('promtool', ['check', 'config', `${root}/prometheus/prometheus.yml`], { cwd: dirname(root), encoding: 'utf8' })
  })

  it('docker-compose accepts the stack, with and without the plain-MQTT override', () => {
    if (!tool('docker-compose')) return
    const config = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: root, encoding: 'utf8' })
    const stack = parse(config) as { services: Record<string, { ports?: unknown[]; networks?: unknown; profiles?: string[] }>; networks: Record<string, { internal?: boolean }> }
    // Services of a profile (`scale`: deploy-examples.test.ts) start only when it is asked for.
    const always = Object.entries(stack.services).filter(([, s]) => s.profiles === undefined).map(([name]) => name)
    expect(always.sort()).toEqual(['broker', 'certs', 'grafana', 'moat', 'prometheus'])
    expect(stack.services.broker!.ports).toBeUndefined() // the broker is reachable only through Moat
    expect(stack.networks.internal!.internal).toBe(true)
    const plain = execFileSync('docker-compose', ['-f', 'docker-compose.yml', '-f', 'docker-compose.plain.yml', 'config'], { cwd: root, encoding: 'utf8' })
    expect(plain).toMatch(/published: 1883/)
  })

  it("the stack's policy (deploy/moat.yaml) is a valid config once its certificates exist", () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-stack-'))
    makeDevCerts({ out: join(dir, 'certs') })
    writeFileSync(join(dir, 'moat.yaml'), readFileSync(`${root}/deploy/moat.yaml`, 'utf8').replaceAll('/certs/', `${dir}/certs/`))
    copyFileSync(`${root}/deploy/passwd`, join(dir, 'passwd'))
    const config = loadConfig(join(dir, 'moat.yaml'))
    expect(config.listeners.map((l) => l.protocol)).toEqual(['mqtts', 'mqtt'])
    expect(config.auth.anonymous).toBe(false)
    expect(config.acl?.rules.at(-1)).toMatchObject({ effect: 'deny', topic: '#' })
  })
})
