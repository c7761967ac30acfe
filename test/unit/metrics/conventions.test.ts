/**
 * Every metric family Moat can export follows Prometheus' naming rules: a counter's name ends in
 * `_total` and nothing else's does; Moat's own are prefixed `moat_`, Node's keep their usual
 * `process_` and `nodejs_` names, which standard dashboards query. Checked on the registry a Moat
 * builds (one process or a worker) and on the series the primary of `workers: N` adds.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load.js'
import { Moat } from '../../../src/moat.js'
import { ClusterMetrics } from '../../../src/workers/metrics.js'

async function families(): Promise<Array<{ name: string; type: string }>> {
  const config = parseConfig('listeners: [{ name: plain, protocol: mqtt, port: 0 }]\nupstream: { host: 127.0.0.1, port: 1884 }\n', 'moat.yaml')
  const moat = new Moat(config, { admin: false, logger: pino({ level: 'silent' }) })
  const primary = new ClusterMetrics({ collect: () => Promise.resolve([]), workersRunning: 0, workersWanted: 2, restarts: 0, reloads: 0, reloadFailures: 0 })
  const all = [...await moat.registry.getMetricsAsJSON(), ...await primary.getMetricsAsJSON()]
  return all.map((m) => ({ name: m.name, type: String(m.type) }))
}

describe('metric names', () => {
  it('end in _total exactly when they are counters', async () => {
    const all = await families()
    expect(all.length).toBeGreaterThan(50)
    expect(all.filter((m) => m.type === 'counter' && !m.name.endsWith('_total')).map((m) => m.name)).toEqual([])
    expect(all.filter((m) => m.type !== 'counter' && m.name.endsWith('_total')).map((m) => m.name)).toEqual([])
  })

  it('are moat_ for Moat and process_ or nodejs_ for Node, and valid Prometheus names', async () => {
    const all = await families()
    expect(all.filter((m) => !/^(moat|process|nodejs)_[a-z0-9_]+$/.test(m.name)).map((m) => m.name)).toEqual([])
    expect(all.map((m) => m.name)).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_active_handles', 'moat_tls_certificate_not_after_timestamp_seconds']))
    expect(all.filter((m) => /^moat_(process|nodejs)_/.test(m.name)).map((m) => m.name)).toEqual([])
  })
})
