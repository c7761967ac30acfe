/**
 * The ACL compiled twice: once per policy (CompiledAcl: selectors pre-built) and once per session
 * (SessionAcl: only the rules whose selectors match this client, placeholders filled in), so that
 * per packet a decision is one loop over plain strings: no substitution, no allocation.
 *
 * First match wins; no match denies. For a topic name (PUBLISH, a delivery) a rule matches when
 * its pattern matches the topic. For a SUBSCRIBE filter an allow rule matches only when its pattern
 * contains the whole filter, and a deny rule whenever the two overlap (acl/filter-relations.ts).
 * An allow rule whose placeholder cannot be filled never matches; a deny rule whose placeholder
 * cannot be filled matches everything it could have (fail closed).
 */
import type { BlockList } from 'node:net'
import { isIPv4 } from 'node:net'
import { cidrList } from '../config/acl-schema.js'
import type { AclRuleConfig } from '../config/types.js'
import { topicMatches } from '../protocol/topic-match.js'
import type { SessionState } from '../session/state.js'
import { filterContains, filtersOverlap } from './filter-relations.js'
import { substitute } from './placeholders.js'

export interface BoundRule {
  readonly name: string
  readonly allow: boolean
  /** The pattern with placeholders filled; null when they could not be (see above). */
  readonly pattern: string | null
  readonly maxQos: number
  readonly retain: boolean
  readonly disconnect: boolean
}

class PolicyRule {
  readonly config: AclRuleConfig
  private readonly sources: BlockList | null
  private readonly users: ReadonlySet<string> | null
  private readonly groups: ReadonlySet<string> | null
  private readonly listeners: ReadonlySet<string> | null

  constructor(config: AclRuleConfig) {
    this.config = config
    this.sources = config.sources === null ? null : cidrList(config.sources)
    this.users = config.users === null ? null : new Set(config.users)
    this.groups = config.groups === null ? null : new Set(config.groups)
    this.listeners = config.listeners === null ? null : new Set(config.listeners)
  }

  appliesTo(s: SessionState): boolean {
    const c = this.config
    if (c.anonymous !== null && c.anonymous !== (s.username === null)) return false
    if (this.users !== null && (s.username === null || !this.users.has(s.username))) return false
    if (this.groups !== null && !s.groups.some((g) => this.groups!.has(g))) return false
    if (this.listeners !== null && !this.listeners.has(s.listener)) return false
    if (this.sources !== null) {
      const address = s.remoteAddress.startsWith('::ffff:') && isIPv4(s.remoteAddress.slice(7)) ? s.remoteAddress.slice(7) : s.remoteAddress
      if (address === '' || !this.sources.check(address, isIPv4(address) ? 'ipv4' : 'ipv6')) return false
    }
    return true
  }

  bind(s: SessionState): BoundRule {
    const c = this.config
    return Object.freeze({
      name: c.name,
      allow: c.effect === 'allow',
      pattern: substitute(c.topic, s),
      maxQos: c.maxQos,
      retain: c.retain,
      disconnect: c.onDeny === 'disconnect',
    })
  }
}

export class CompiledAcl {
  private readonly rules: readonly PolicyRule[]

  constructor(rules: readonly AclRuleConfig[]) {
    this.rules = rules.map((r) => new PolicyRule(r))
  }

  /** The session's rule lists; call once the identity is known (after authentication). */
  bind(s: SessionState): SessionAcl {
    const publish: BoundRule[] = []
    const subscribe: BoundRule[] = []
    for (const rule of this.rules) {
      if (!rule.appliesTo(s)) continue
      const bound = rule.bind(s)
      if (rule.config.publish) publish.push(bound)
      if (rule.config.subscribe) subscribe.push(bound)
    }
    return new SessionAcl(publish, subscribe)
  }
}

export class SessionAcl {
  private readonly publishRules: readonly BoundRule[]
  private readonly subscribeRules: readonly BoundRule[]
  /** The rule that decided the last call; null when none matched (default deny). */
  rule: BoundRule | null = null

  constructor(publish: BoundRule[], subscribe: BoundRule[]) {
    this.publishRules = publish
    this.subscribeRules = subscribe
  }

  /** May the client publish to `topic` with this QoS and retain flag? */
  mayPublish(topic: string, qos: number, retain: boolean): boolean {
    const rule = this.firstForTopic(this.publishRules, topic)
    if (rule === null || !rule.allow) return false
    return qos <= rule.maxQos && (!retain || rule.retain)
  }

  /** May the client receive messages published to `topic` (outbound check)? */
  mayRead(topic: string): boolean {
    const rule = this.firstForTopic(this.subscribeRules, topic)
    return rule !== null && rule.allow
  }

  /** May the client subscribe to `filter` (without `$share/GROUP/`) at this QoS? */
  maySubscribe(filter: string, qos: number): boolean {
    const rules = this.subscribeRules
    this.rule = null
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!
      const pattern = rule.pattern
      if (rule.allow) {
        if (pattern === null || !filterContains(pattern, filter)) continue
        this.rule = rule
        return qos <= rule.maxQos
      }
      if (pattern === null || filtersOverlap(pattern, filter)) {
        this.rule = rule
        return false
      }
    }
    return false
  }

  private firstForTopic(rules: readonly BoundRule[], topic: string): BoundRule | null {
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!
      const pattern = rule.pattern
      if (pattern === null ? !rule.allow : topicMatches(pattern, topic)) {
        this.rule = rule
        return rule
      }
    }
    this.rule = null
    return null
  }
}
