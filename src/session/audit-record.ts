/**
 * What the log says about one session. Every line that names the client is built here, from one
 * identity builder and one refusal builder, so no line can carry a field of another moment: a
 * refusal names the check and rule behind it only when a check's verdict decided it, and a rule is
 * spent by the refusal it decided (SessionState.lastRule is set by a refusing check and never
 * cleared by one that forwards).
 *
 * Also the session's child logger and the tally of its refusals, summed up in `session_end`.
 */
import type { SessionChecks } from '../checks/chain.js'
import type { CloseReason, DenyReason } from '../stats/reasons.js'
import type { Ban } from '../fleet/shared-store.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../stats/stats.js'
import { packetTypeNames } from '../protocol/packet-type.js'
import type { SessionState } from '../client/session-state.js'

/** The fields of a refusal line, `audit`, `event` and `reason` first (deploy/fail2ban reads them in that order). */
export interface RefusalFields {
  readonly audit: true
  readonly event: string
  readonly reason: string
  /** The MQTT code sent to the client, if any. */
  readonly code: number | undefined
  /** The policy rule and the check that decided; absent when Moat itself refused (a protocol fault, a limit of its own). */
  readonly rule: string | undefined
  readonly check: string | undefined
  readonly clientId: string | undefined
  readonly username: string | undefined
}

/** The fields of a line about the session as a whole (admitted, open, ended). */
export interface SessionFields {
  readonly event: string
  readonly clientId: string | undefined
  readonly username: string | undefined
  readonly authenticatedBy: string | undefined
  readonly version: number
}

export class AuditRecord {
  private readonly root: Logger
  private readonly state: SessionState
  private readonly stats: Stats
  /**
   * The child logger (sid, listener, remote), made when a line is logged and dropped once the
   * session is open: an open session logs rarely and an idle one holds none (memory per connection).
   */
  private logger: Logger | null = null
  /** Refusals by deny reason: the first of each is logged, all are summed up in session_end. */
  private refusals: Map<string, number> | null = null

  constructor(root: Logger, state: SessionState, stats: Stats) {
    this.root = root
    this.state = state
    this.stats = stats
  }

  get log(): Logger {
    const state = this.state
    return this.logger ?? (this.logger = this.root.child({ sid: state.id, listener: state.listener, remote: `${state.remoteAddress}:${state.remotePort}` }))
  }

  /** The one refusal builder. `decider`: the checks whose verdict refused, null when Moat itself did. */
  refusal(event: string, why: string, code: number | undefined, decider: SessionChecks | null): RefusalFields {
    const state = this.state
    const rule = this.spendRule(decider)
    return {
      audit: true, event, reason: why, code, rule, check: decider === null ? undefined : decider.decidedBy || undefined,
      clientId: state.clientId || undefined, username: state.username ?? undefined,
    }
  }

  /** The one identity builder for lines about the whole session. */
  summary(event: string): SessionFields {
    const state = this.state
    return { event, clientId: state.clientId || undefined, username: state.username ?? undefined, authenticatedBy: state.authenticatedBy ?? undefined, version: state.version }
  }

  /**
   * `summary` for session_open and session_end, the lines every connection logs at info. Without a
   * child logger made, they go through the root logger led by the child's bindings: the same line,
   * without a child made for one line. The line's own fields are assigned, not spread in: pino
   * walks a spread-built object several times slower.
   */
  private sessionLine(event: string): Record<string, unknown> {
    if (this.logger !== null) return { ...this.summary(event) }
    const state = this.state
    return {
      sid: state.id, listener: state.listener, remote: `${state.remoteAddress}:${state.remotePort}`,
      event, clientId: state.clientId || undefined, username: state.username ?? undefined, authenticatedBy: state.authenticatedBy ?? undefined, version: state.version,
    }
  }

  /** The rule of the refusal being handled (a check's only), cleared so no later line repeats it. */
  private spendRule(decider: SessionChecks | null): string | undefined {
    const rule = decider === null ? undefined : this.state.lastRule || undefined
    this.state.lastRule = ''
    return rule
  }

  /** The client is closed for `why` (a check's Disconnect, or a fault of its own); `type` -1: no packet could be framed. */
  clientRefused(why: DenyReason, code: number, type: number, decider: SessionChecks | null): void {
    this.log.warn({ ...this.refusal('client_refused', why, code, decider), packetType: packetTypeNames[type] }, 'closing client')
  }

  /** The CONNECT is refused with `code` (the refusing CONNACK's, if one is sent). */
  connectRefused(why: CloseReason, code: number | undefined, type: number, decider: SessionChecks | null): void {
    // A failing auth backend is logged once per interval (auth/instrumented.ts), not once per client.
    const level = why === 'auth_backend_failed' ? 'debug' : 'warn'
    this.log[level]({ ...this.refusal('connect_refused', why, code, decider), packetType: packetTypeNames[type] }, 'refusing client')
  }

  /**
   * A packet refused while the client stays: counted, and logged the first time its reason comes
   * up in this session (later ones are summed up in session_end, not logged at packet rate).
   */
  rejected(why: DenyReason, code: number, action: string, topic: string, decider: SessionChecks | null): void {
    this.stats.countReject(why as CloseReason)
    const refusals = this.refusals ?? (this.refusals = new Map())
    const seen = refusals.get(why) ?? 0
    refusals.set(why, seen + 1)
    if (seen > 0) {
      this.spendRule(null)
      return
    }
    this.log.warn({ ...this.refusal('packet_refused', why, code, decider), action, topic }, 'refused (first of its kind for this session; later ones are only counted)')
  }

  tooLarge(declaredSize: number, code: number): void {
    this.log.warn({ ...this.refusal('client_refused', 'packet_too_large', code, null), declaredSize }, 'closing client')
  }

  connectTimeout(buffered: number): void {
    this.log.warn({ ...this.refusal('client_refused', 'connect_timeout', undefined, null), buffered }, 'no CONNECT in time')
  }

  banned(ban: Ban): void {
    this.log.warn({ ...this.refusal('session_banned', 'banned', undefined, null), kind: ban.kind, source: ban.source }, 'closing a banned client')
  }

  /** After a reload: subscriptions the new policy took away, unsubscribed at the broker. */
  revoked(filters: readonly string[], decider: SessionChecks): void {
    this.log.info({ ...this.summary('subscriptions_revoked'), filters, rule: this.spendRule(decider) }, 'policy reload: unsubscribing at the broker')
  }

  /** Debug only: `session_open` (once the broker accepted) says who connected, with the same fields. */
  admitted(): void {
    if (this.root.isLevelEnabled('debug')) this.log.debug(this.summary('client_admitted'), 'client admitted')
  }

  /** `session_open` (or the broker's refusal), once the client has its CONNACK. */
  opened(code: number): void {
    const connected = this.state.connected
    if (this.root.isLevelEnabled('info')) {
      const line = this.sessionLine(connected ? 'session_open' : 'session_refused_by_broker')
      line.code = code
      line.transport = this.state.transport
      ;(this.logger ?? this.root).info(line, connected ? 'client connected to the broker' : 'the broker refused the client')
    }
    if (connected) this.logger = null // made again for the next line, if any
  }

  ended(reason: CloseReason | null, bytesIn: number, bytesOut: number, durationMs: number): void {
    if (!this.root.isLevelEnabled('info')) return
    const line = this.sessionLine('session_end')
    line.reason = reason
    line.bytesIn = bytesIn
    line.bytesOut = bytesOut
    line.durationMs = durationMs
    line.refusals = this.refusals === null ? undefined : Object.fromEntries(this.refusals)
    ;(this.logger ?? this.root).info(line, 'session closed')
  }
}
