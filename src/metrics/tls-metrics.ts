/**
 * TLS handshake metrics, read from TlsStats at scrape time. Labels are bounded: listener names from
 * the config, and two outcomes.
 *
 *   moat_tls_handshakes_total{listener,outcome}   full, or resumed (a session ticket or a cached session)
 */
import { Counter, type Registry } from 'prom-client'
import type { TlsStats } from '../stats/tls-stats.js'

export function registerTlsMetrics(register: Registry, tls: TlsStats): void {
  new Counter({
    name: 'moat_tls_handshakes_total',
    help: 'TLS handshakes completed, by listener and outcome: full, or resumed from a session ticket or a cached TLS 1.2 session. resumed / (full + resumed) is the resumption rate.',
    labelNames: ['listener', 'outcome'],
    registers: [register],
    collect() {
      this.reset()
      for (const [listener, value] of tls.full) this.inc({ listener, outcome: 'full' }, value)
      for (const [listener, value] of tls.resumed) this.inc({ listener, outcome: 'resumed' }, value)
    },
  })
}
