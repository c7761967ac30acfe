/**
 * Auth counters: plain typed arrays, fed on CONNECT, read by metrics/registry.ts at
 * scrape time. Labels are bounded by construction: backend types, outcomes, error kinds, decisions.
 */
/** The kinds of auth backend (a metric label). */
export const backendTypes = ['file', 'http', 'jwt', 'certificate'] as const
export type BackendType = (typeof backendTypes)[number]

/** Why a backend could not answer: a bounded set, used as a metric label. */
export const backendErrorKinds = ['timeout', 'unavailable', 'bad_response', 'overloaded', 'internal'] as const
export type BackendErrorKind = (typeof backendErrorKinds)[number]

export const attemptOutcomes = ['allow', 'deny', 'no_opinion', 'error'] as const
export type AttemptOutcome = (typeof attemptOutcomes)[number]

/** What the auth check decided for a CONNECT (`passed_to_broker`: no backend knew the credentials; the broker decides). */
export const authDecisions = ['allowed', 'anonymous', 'passed_to_broker', 'bad_credentials', 'not_authorized', 'backend_failed', 'banned', 'client_id_refused', 'client_id_taken'] as const
export type AuthDecision = (typeof authDecisions)[number]

/** Upper bounds (seconds) of the backend duration histogram. */
export const durationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

const B = backendTypes.length
export const backendIndex = new Map<BackendType, number>(backendTypes.map((t, i) => [t, i]))
const outcomeIndex = new Map<AttemptOutcome, number>(attemptOutcomes.map((o, i) => [o, i]))
const errorIndex = new Map<BackendErrorKind, number>(backendErrorKinds.map((k, i) => [k, i]))
const decisionIndex = new Map<AuthDecision, number>(authDecisions.map((d, i) => [d, i]))

export class AuthStats {
  /** [backend][outcome] */
  readonly attempts = new Float64Array(B * attemptOutcomes.length)
  /** [backend][error kind] */
  readonly errors = new Float64Array(B * backendErrorKinds.length)
  readonly decisions = new Float64Array(authDecisions.length)
  /** [backend][bucket] (non-cumulative; the last slot is +Inf), sums and counts per backend. */
  readonly durationBuckets = new Float64Array(B * (durationBuckets.length + 1))
  readonly durationSum = new Float64Array(B)
  readonly durationCount = new Float64Array(B)
  /** [backend][hit, miss] */
  readonly cache = new Float64Array(B * 2)
  /** Bans started, by what was banned: [address, username]. */
  readonly bans = new Float64Array(2)
  lockoutEntries = 0

  attempt(backend: BackendType, outcome: AttemptOutcome): void {
    this.attempts[backendIndex.get(backend)! * attemptOutcomes.length + outcomeIndex.get(outcome)!]! += 1
  }

  error(backend: BackendType, kind: BackendErrorKind): void {
    this.errors[backendIndex.get(backend)! * backendErrorKinds.length + errorIndex.get(kind)!]! += 1
  }

  errorsOf(backend: BackendType, kind: BackendErrorKind): number {
    return this.errors[backendIndex.get(backend)! * backendErrorKinds.length + errorIndex.get(kind)!]!
  }

  decision(d: AuthDecision): void {
    this.decisions[decisionIndex.get(d)!]! += 1
  }

  decided(d: AuthDecision): number {
    return this.decisions[decisionIndex.get(d)!]!
  }

  duration(backend: BackendType, seconds: number): void {
    const b = backendIndex.get(backend)!
    let i = 0
    while (i < durationBuckets.length && seconds > durationBuckets[i]!) i++
    this.durationBuckets[b * (durationBuckets.length + 1) + i]! += 1
    this.durationSum[b]! += seconds
    this.durationCount[b]! += 1
  }

  cacheLookup(backend: BackendType, hit: boolean): void {
    this.cache[backendIndex.get(backend)! * 2 + (hit ? 0 : 1)]! += 1
  }
}
