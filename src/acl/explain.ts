/**
 * `moat check --as USER:CLIENT --publish TOPIC | --subscribe FILTER`: the decision the ACL of a
 * config makes for one identity, and the rule that made it, so an operator (or a policy
 * repository's CI) can test a rule before deploying it.
 */
import type { AclConfig } from '../config/types.js'
import { plainConnInfo } from '../client/conn-info.js'
import { SessionState } from '../client/session-state.js'
import { unshare } from './filter-relations.js'
import { CompiledAcl } from './session-acl.js'

export interface Identity {
  /** null: an anonymous client. */
  readonly username: string | null
  readonly clientId: string
  readonly listener: string
  readonly address: string
  readonly certCn: string | null
  readonly claims: Readonly<Record<string, string>>
  readonly groups: readonly string[]
}

export interface Decision {
  readonly allowed: boolean
  /** The rule that decided, or 'default deny' when none matched, or 'no acl section'. */
  readonly rule: string
  /** A subscription allowed at a lower QoS than asked (the rule's maxQos): the QoS it gets. */
  readonly downgradedTo?: number
  /** A subscription allowed past deny rules it overlaps: those rules, whose topics are not delivered. */
  readonly filteredBy?: readonly string[]
}

export function explain(acl: AclConfig | null, who: Identity, action: 'publish' | 'subscribe', topic: string, qos = 0, retain = false): Decision {
  if (acl === null) return { allowed: true, rule: 'no acl section: every topic is allowed' }
  const certificate = who.certCn === null ? null : { subject: `CN=${who.certCn}`, cn: who.certCn, sans: [], fingerprint256: '' }
  const s = new SessionState(0, { ...plainConnInfo(who.listener, who.address, 0), certificate })
  s.username = who.username
  s.clientId = who.clientId
  s.claims = who.claims
  s.groups = who.groups
  const rules = new CompiledAcl(acl.rules, acl.overlap).bind(s)
  if (action === 'subscribe') {
    const max = rules.subscribeQos(unshare(topic))
    const rule = rules.rule?.name ?? 'default deny (no rule matched)'
    if (max < 0) return { allowed: false, rule }
    const filtered = rules.filteredBy
    // A shared subscription is refused rather than filtered (checks/acl.ts).
    if (filtered !== null && topic.startsWith('$share/')) return { allowed: false, rule: filtered[0]!.name }
    return {
      allowed: true, rule,
      ...(qos > max ? { downgradedTo: max } : {}),
      ...(filtered === null ? {} : { filteredBy: filtered.map((r) => r.name) }),
    }
  }
  const allowed = rules.mayPublish(topic, qos, retain)
  return { allowed, rule: rules.rule?.name ?? 'default deny (no rule matched)' }
}
