/**
 * /metrics renders a snapshot of the metrics into a registry made for the one scrape
 * (src/admin/exposition.ts). Its output is prom-client's own: the text of the registry the metrics
 * live in, and the OpenMetrics of a registry created for that format, byte for byte.
 */
import { Counter, Gauge, Histogram, Registry, type RegistryContentType } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { render } from '../../../src/admin/exposition.js'

/** A counter, a gauge and a histogram with samples, help text and label values that need escaping. */
function filled(register: Registry<RegistryContentType>): void {
  const counter = new Counter({ name: 'moat_things_total', help: 'Things, by "kind" \\ with a backslash.', labelNames: ['kind'], registers: [register] })
  counter.inc({ kind: 'a' }, 3)
  counter.inc({ kind: 'quote " and \\ and\nnewline' }, 1)
  new Gauge({ name: 'moat_level', help: 'A level.', registers: [register] }).set(2.5)
  const histogram = new Histogram({ name: 'moat_wait_seconds', help: 'Waits.', labelNames: ['backend'], buckets: [0.1, 1], registers: [register] })
  histogram.observe({ backend: 'http' }, 0.05)
  histogram.observe({ backend: 'http' }, 0.5)
  histogram.observe({ backend: 'jwt' }, 3)
}

describe('rendering a snapshot of the metrics', () => {
  it('gives the text of the registry the metrics live in', async () => {
    const register = new Registry()
    filled(register)
    expect(await render(await register.getMetricsAsJSON(), 'text')).toBe(await register.metrics())
  })

  it('gives the OpenMetrics of a registry created for that format, and leaves the snapshot\'s source as it was', async () => {
    const register = new Registry()
    filled(register)
    const open = new Registry<RegistryContentType>()
    open.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
    filled(open)
    const rendered = await render(await register.getMetricsAsJSON(), 'openmetrics')
    expect(rendered).toBe(await open.metrics())
    expect(rendered).toContain('# TYPE moat_things counter\n')
    expect(rendered).toContain('moat_things_total{kind="a"} 3\n')
    expect((await register.getMetricsAsJSON()).map((m) => m.name)).toEqual(['moat_things_total', 'moat_level', 'moat_wait_seconds'])
    expect(await render(await register.getMetricsAsJSON(), 'text')).toBe(await register.metrics())
  })
})
