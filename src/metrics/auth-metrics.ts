/**
 * Auth metrics, read from AuthStats at scrape time. Labels are bounded: backend types
 * (file, http, jwt, certificate), outcomes, error kinds, decisions.
 *
 *   moat_auth_attempts_total{backend,outcome}       answers per backend: allow, deny, no_opinion, error
 *   moat_auth_decisions_total{decision}             per CONNECT: allowed, anonymous, bad_credentials, …
 *   moat_auth_backend_errors_total{backend,kind}    timeout, unavailable, bad_response, overloaded, internal
 *   moat_auth_backend_duration_seconds{backend}     histogram of real backend calls (cache hits excluded)
 *   moat_auth_cache_lookups_total{backend,result}   hit (or joined an in-flight call), miss
 *   moat_auth_bans_total{per}                       lockouts started, by address or username
 *   moat_auth_lockout_entries                       counters held by the lockout table
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import { attemptOutcomes, authDecisions, backendErrorKinds, backendTypes, durationBuckets, type AuthStats } from '../stats/auth-stats.js'

export function registerAuthMetrics(register: Registry, auth: AuthStats): void {
  new Counter({
    name: 'moat_auth_attempts_total',
    help: 'Answers of auth backends, by backend type and outcome (allow, deny, no_opinion, error).',
    labelNames: ['backend', 'outcome'],
    registers: [register],
    collect() {
      this.reset()
      backendTypes.forEach((backend, b) => attemptOutcomes.forEach((outcome, o) => {
        const v = auth.attempts[b * attemptOutcomes.length + o]!
        if (v > 0) this.inc({ backend, outcome }, v)
      }))
    },
  })
  new Counter({
    name: 'moat_auth_decisions_total',
    help: 'What the auth check decided per CONNECT.',
    labelNames: ['decision'],
    registers: [register],
    collect() {
      this.reset()
      authDecisions.forEach((decision, i) => {
        const v = auth.decisions[i]!
        if (v > 0) this.inc({ decision }, v)
      })
    },
  })
  new Counter({
    name: 'moat_auth_backend_errors_total',
    help: 'Auth backend calls that failed (the client was denied: fail closed), by backend type and kind.',
    labelNames: ['backend', 'kind'],
    registers: [register],
    collect() {
      this.reset()
      backendTypes.forEach((backend, b) => backendErrorKinds.forEach((kind, k) => {
        const v = auth.errors[b * backendErrorKinds.length + k]!
        if (v > 0) this.inc({ backend, kind }, v)
      }))
    },
  })
  new Counter({
    name: 'moat_auth_cache_lookups_total',
    help: 'Auth cache lookups, by backend type and result (hit includes joining a call in flight).',
    labelNames: ['backend', 'result'],
    registers: [register],
    collect() {
      this.reset()
      backendTypes.forEach((backend, b) => {
        if (auth.cache[b * 2]! > 0) this.inc({ backend, result: 'hit' }, auth.cache[b * 2]!)
        if (auth.cache[b * 2 + 1]! > 0) this.inc({ backend, result: 'miss' }, auth.cache[b * 2 + 1]!)
      })
    },
  })
  new Counter({
    name: 'moat_auth_bans_total',
    help: 'Lockouts started after too many failed logins, by what was banned (address, username).',
    labelNames: ['per'],
    registers: [register],
    collect() {
      this.reset()
      if (auth.bans[0]! > 0) this.inc({ per: 'address' }, auth.bans[0]!)
      if (auth.bans[1]! > 0) this.inc({ per: 'username' }, auth.bans[1]!)
    },
  })
  new Gauge({
    name: 'moat_auth_lockout_entries',
    help: 'Failed-login counters held by the lockout table (bounded by auth.lockout.maxEntries).',
    registers: [register],
    collect() {
      this.set(auth.lockoutEntries)
    },
  })
  register.registerMetric(new DurationHistogram(auth) as never)
}

/** A histogram whose buckets live in AuthStats (filled on CONNECT), exported as Prometheus text. */
class DurationHistogram {
  readonly name = 'moat_auth_backend_duration_seconds'
  readonly help = 'Duration of auth backend calls (cache hits excluded), by backend type.'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly auth: AuthStats

  constructor(auth: AuthStats) {
    this.auth = auth
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> } {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = []
    const a = this.auth
    const width = durationBuckets.length + 1
    backendTypes.forEach((backend, b) => {
      if (a.durationCount[b] === 0) return
      let cumulative = 0
      durationBuckets.forEach((le, i) => {
        cumulative += a.durationBuckets[b * width + i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { backend, le }, value: cumulative })
      })
      cumulative += a.durationBuckets[b * width + durationBuckets.length]!
      values.push({ metricName: `${this.name}_bucket`, labels: { backend, le: '+Inf' }, value: cumulative })
      values.push({ metricName: `${this.name}_sum`, labels: { backend }, value: a.durationSum[b]! })
      values.push({ metricName: `${this.name}_count`, labels: { backend }, value: a.durationCount[b]! })
    })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset(): void {}
}
