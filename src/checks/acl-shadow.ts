/**
 * Shadow ACL: a candidate rule set run beside the enforced one, in log-only mode. It never refuses
 * anything; what it would deny is counted (`moat_acl_shadow_denials_total{action}`) and logged
 * once per session and rule, so an operator can tighten rules on a live fleet without breaking it.
 * It runs after the enforced ACL, so it sees only what that one let through.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import { unshare } from '../acl/filter-relations.js'
import { CompiledAcl, type SessionAcl } from '../acl/session-acl.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../stats/stats.js'
import type { PublishView } from '../protocol/publish.js'
import type { SessionState } from '../client/session-state.js'
import type { Check, CheckFactory } from './check.js'
import { FORWARD, type Verdict } from './verdict.js'

export const SHADOW_PUBLISH = 0
export const SHADOW_SUBSCRIBE = 1

export class AclShadowCheck implements Check {
  readonly name = 'acl_shadow'
  private readonly compiled: CompiledAcl
  private readonly logger: Logger
  private readonly stats: Stats
  private acl: SessionAcl | null = null
  /** Rules already logged for this session (one line per rule, however many packets it hits). */
  private logged: Set<string> | null = null

  constructor(compiled: CompiledAcl, logger: Logger, stats: Stats) {
    this.compiled = compiled
    this.logger = logger
    this.stats = stats
  }

  private rules(s: SessionState): SessionAcl {
    return this.acl ?? (this.acl = this.compiled.bind(s))
  }

  private wouldDeny(action: number, topic: string, s: SessionState): void {
    this.stats.aclShadowDenials[action]! += 1
    const rule = this.rules(s).rule?.name ?? 'default deny'
    const logged = this.logged ?? (this.logged = new Set())
    if (logged.has(rule) || logged.size >= 64) return
    logged.add(rule)
    this.logger.warn({
      event: 'acl_shadow_deny', sid: s.id, clientId: s.clientId, username: s.username ?? undefined,
      action: action === SHADOW_PUBLISH ? 'publish' : 'subscribe', topic, rule,
    }, 'shadow ACL would deny (not enforced)')
  }

  onConnect(connect: IConnectPacket, s: SessionState): Verdict {
    // Bound on first use (after authentication): an idle session holds no bound rules.
    const will = connect.will
    if (will && !this.rules(s).mayPublish(will.topic, will.qos ?? 0, will.retain ?? false)) this.wouldDeny(SHADOW_PUBLISH, will.topic, s)
    return FORWARD
  }

  onPublish(p: PublishView, s: SessionState): Verdict {
    if (!this.rules(s).mayPublish(p.topic, p.qos, p.retain)) this.wouldDeny(SHADOW_PUBLISH, p.topic, s)
    return FORWARD
  }

  onSubscribe(subscription: ISubscription, s: SessionState): Verdict {
    if (this.rules(s).subscribeQos(unshare(subscription.topic)) < 0) this.wouldDeny(SHADOW_SUBSCRIBE, subscription.topic, s)
    return FORWARD
  }
}

export const aclShadowCheck: CheckFactory = {
  name: 'acl_shadow',
  create(config, env) {
    const shadow = config.acl?.shadow ?? null
    if (shadow === null) return null
    const compiled = new CompiledAcl(shadow, config.acl!.overlap)
    return () => new AclShadowCheck(compiled, env.logger, env.stats)
  },
}
