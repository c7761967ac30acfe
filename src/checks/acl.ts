/**
 * Topic allow-list (acl/session-acl.ts holds the matching): every PUBLISH (the will message of
 * CONNECT and retained publishes included), every SUBSCRIBE filter (`$share/GROUP/f` judged on `f`),
 * and, with `acl.outbound`, every delivery from the broker. Topic aliases are resolved by the
 * protocol check before this one runs, so an alias never hides a topic from it.
 *
 * A filter granted although a deny rule covers part of it (`acl.overlap: filter`: `#` past a deny
 * of `secret/#`) has the denied topics held back on delivery, by the outbound check: a policy where
 * that can happen gets it as if `acl.outbound` were set, the others read no delivery for the ACL.
 * Every delivery is judged, not only those of such filters: a delivery does not say which filter
 * brought it, and a grant without denied topics in it makes every topic it brings readable. A
 * shared subscription is not granted that way: a delivery held back would be lost to the group.
 *
 * The session's rules are bound after authentication: in onConnect (it runs after the auth check)
 * when there is a will to judge, otherwise on first use.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import { CompiledAcl, type SessionAcl } from '../acl/session-acl.js'
import { unshare } from '../acl/filter-relations.js'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import type { SessionState } from '../client/session-state.js'
import type { Check, CheckFactory } from './check.js'
import { disconnect, FORWARD, reject, type Verdict } from './verdict.js'

const DENIED = reject(ReasonCode.NotAuthorized, 'acl_denied')
const DENIED_CLOSE = disconnect(ReasonCode.NotAuthorized, 'acl_denied')

export class AclCheck implements Check {
  readonly name: string = 'acl'
  private readonly compiled: CompiledAcl
  private acl: SessionAcl | null = null

  constructor(compiled: CompiledAcl) {
    this.compiled = compiled
  }

  protected rules(s: SessionState): SessionAcl {
    return this.acl ?? (this.acl = this.compiled.bind(s))
  }

  /** The verdict for a refusal by the rule that just decided (or the default deny). */
  private denied(acl: SessionAcl, s: SessionState): Verdict {
    const rule = acl.rule
    s.lastRule = rule === null ? 'default deny' : rule.name
    return rule !== null && rule.disconnect ? DENIED_CLOSE : DENIED
  }

  onConnect(connect: IConnectPacket, s: SessionState): Verdict {
    const will = connect.will
    // The will is a publish the broker makes for the client later: judge it now, like any publish.
    // Without one the rules are bound on first use (the identity is settled by then, and stays):
    // an idle session holds no bound rules (memory per idle connection).
    if (!will) return FORWARD
    const acl = this.rules(s)
    if (!acl.mayPublish(will.topic, will.qos ?? 0, will.retain ?? false)) {
      s.lastRule = acl.rule === null ? 'default deny' : acl.rule.name
      return DENIED
    }
    return FORWARD
  }

  onPublish(p: PublishView, s: SessionState): Verdict {
    const acl = this.rules(s)
    return acl.mayPublish(p.topic, p.qos, p.retain) ? FORWARD : this.denied(acl, s)
  }

  /**
   * A filter no rule allows is refused. One asked at a QoS above the allowing rule's maxQos is
   * downgraded, as a broker grants a lower QoS than asked [MQTT-3.8.4-6]: the session forwards the
   * SUBSCRIBE with the lowered QoS and the broker's SUBACK tells the client what it got.
   */
  onSubscribe(subscription: ISubscription, s: SessionState): Verdict {
    const acl = this.rules(s)
    const filter = subscription.topic
    const max = acl.subscribeQos(unshare(filter))
    if (max < 0) return this.denied(acl, s)
    if (acl.filteredBy !== null && !this.holdsBack(filter, acl, s)) return DENIED
    if (subscription.qos > max) subscription.qos = max as ISubscription['qos']
    return FORWARD
  }

  reviewSubscription(filter: string, s: SessionState): Verdict {
    const acl = this.rules(s)
    if (!acl.maySubscribe(unshare(filter), s.subscriptions.get(filter) ?? 0)) return this.denied(acl, s)
    return acl.filteredBy !== null && !this.holdsBack(filter, acl, s) ? DENIED : FORWARD
  }

  /**
   * `filter` may be granted only with the topics of `acl.filteredBy` held back on delivery: whether
   * this check does that. This one reads no delivery (the policy was judged never to need it): no,
   * the filter is refused (fail closed).
   */
  protected holdsBack(filter: string, acl: SessionAcl, s: SessionState): boolean {
    s.lastRule = acl.filteredBy![0]!.name
    return false
  }
}

/**
 * Adds the outbound check: deliveries on topics the client may not read are held back (`acl.outbound`,
 * or a policy whose subscriptions may be granted past a deny rule).
 */
export class OutboundAclCheck extends AclCheck {
  onDeliver(p: PublishView, s: SessionState): Verdict {
    const acl = this.rules(s)
    return acl.mayRead(p.topic) ? FORWARD : DENIED
  }

  protected override holdsBack(filter: string, acl: SessionAcl, s: SessionState): boolean {
    return !isShared(filter) || super.holdsBack(filter, acl, s)
  }
}

function isShared(filter: string): boolean {
  return filter.startsWith('$share/')
}

export const aclCheck: CheckFactory = {
  name: 'acl',
  create(config) {
    const acl = config.acl ?? null
    if (acl === null) return null
    const compiled = new CompiledAcl(acl.rules, acl.overlap)
    return acl.outbound || compiled.mayFilterDeliveries ? () => new OutboundAclCheck(compiled) : () => new AclCheck(compiled)
  },
}
