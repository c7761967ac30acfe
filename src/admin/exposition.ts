/**
 * The two exposition formats of /metrics, rendered from a snapshot of the metrics (the JSON of
 * prom-client's `getMetricsAsJSON`) into a registry made for that one scrape. prom-client renames
 * the counters of a registry it renders as OpenMetrics (`moat_x_total` becomes `moat_x` for good),
 * so a registry whose metrics live on must never be switched between the formats.
 */
import { Registry, type RegistryContentType } from 'prom-client'

/** Every metric family at one moment: names, help, types, samples. */
export type MetricsSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/** What /metrics reads: a prom-client Registry, or the primary's merge of its workers. */
export interface MetricsSource {
  getMetricsAsJSON(): Promise<MetricsSnapshot>
}

export type ExpositionFormat = 'text' | 'openmetrics'

export function contentTypeOf(format: ExpositionFormat): RegistryContentType {
  return format === 'openmetrics' ? Registry.OPENMETRICS_CONTENT_TYPE : Registry.PROMETHEUS_CONTENT_TYPE
}

/** OpenMetrics when the scraper asks for it (Prometheus does, by its Accept header); else text 0.0.4. */
export function formatFor(accept: string | undefined): ExpositionFormat {
  return (accept ?? '').includes('application/openmetrics-text') ? 'openmetrics' : 'text'
}

export function render(snapshot: MetricsSnapshot, format: ExpositionFormat): Promise<string> {
  const registry = new Registry<RegistryContentType>()
  registry.setContentType(contentTypeOf(format))
  for (const family of snapshot) {
    // OpenMetrics names a counter family without `_total` and its samples with it; prom-client adds
    // the suffix to the samples of whatever family its OpenMetrics output calls a counter.
    const name = format === 'openmetrics' && String(family.type) === 'counter' ? family.name.replace(/_total$/, '') : family.name
    const fixed = { ...family, name }
    registry.registerMetric({ ...fixed, get: () => Promise.resolve(fixed) } as never)
  }
  return registry.metrics()
}
