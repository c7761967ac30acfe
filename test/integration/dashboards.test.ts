/**
 * The Grafana dashboard and the Prometheus alert rules ask only for metrics Moat exports (a query
 * naming a metric that does not exist shows "No data" forever, and an alert on it never fires);
 * the rules pass `promtool check rules`, and the compose stack passes `docker-compose config`.
 * promtool and docker-compose come from Debian's packages (prometheus, docker-compose), which
 * .ci/run installs; on a machine without them those two checks are skipped with a notice, never
 * under CI=true.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeDevCerts } from '../../src/certs.js'
import { loadConfig } from '../../src/config/load.js'
import type { Moat } from '../../src/moat.js'
import { startBroker, type TestBroker } from '../helpers/broker.js'
import { startMoat } from '../helpers/moat.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

interface Panel { title: string; targets?: Array<{ expr: string }>; panels?: Panel[] }

function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(`${root}/grafana/dashboards/moat.json`, 'utf8')) as { panels: Panel[] }
  const out: Array<{ where: string; expr: string }> = []
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `dashboard panel '${p.title}'`, expr: t.expr })
      walk(p.panels ?? [])
    }
  }
  walk(dashboard.panels)
  return out
}

function alertExpressions(): Array<{ where: string; expr: string }> {
  const rules = parse(readFileSync(`${root}/prometheus/alerts.yml`, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })))
}

/** Metric names a PromQL expression uses: `moat_…` identifiers (histogram series mapped to their family). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bmoat_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))
}

function tool(name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`]).status === 0
  if (!found && process.env.CI === 'true') throw new Error(`CI=true but ${name} is not installed (.ci/run installs it)`)
  if (!found) console.warn(`${name} not installed: skipping its check (apt-get install ${name === 'promtool' ? 'prometheus' : name})`)
  return found
}

describe('dashboards and alert rules', () => {
  let broker: TestBroker
  let moat: Moat

  beforeAll(async () => {
    broker = await startBroker('aedes')
    moat = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0 } })
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('every PromQL expression names only metrics Moat exports', async () => {
    const exported = new Set((await moat.registry.getMetricsAsJSON()).map((m) => m.name))
    const expressions = [...dashboardExpressions(), ...alertExpressions()]
    expect(expressions.length).toBeGreaterThan(20)
    const unknown = expressions.flatMap(({ where, expr }) => metricsIn(expr).filter((m) => !exported.has(m)).map((m) => `${where}: ${m}`))
    expect(unknown).toEqual([])
    // Every metric family Moat exports (beyond Node's process metrics) appears somewhere on the dashboard.
    const shown = new Set(dashboardExpressions().flatMap(({ expr }) => metricsIn(expr)))
    const own = [...exported].filter((m) => !/^moat_(process|nodejs)_/.test(m))
    expect(own.filter((m) => !shown.has(m) && !['moat_policy_info', 'moat_auth_cache_lookups_total', 'moat_auth_lockout_entries'].includes(m))).toEqual([])
  })

  it('the alert rules pass promtool', () => {
    if (!tool('promtool')) return
    const out = execFileSync('promtool', ['check', 'rules', `${root}/prometheus/alerts.yml`], { encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS: \d+ rules found/)
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
