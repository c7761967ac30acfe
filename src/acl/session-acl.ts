/**
 * The ACL compiled twice: once per policy (CompiledAcl: selectors pre-built, rules without
 * placeholders indexed in a TopicTrie per action) and once per session (SessionAcl: which rules
 * apply to this client, and the placeholder rules with its identity filled in), so that per
 * packet a decision is a trie walk plus a short loop: its cost does not grow with the rule count,
 * and a session holds no per-rule copies (the `applies` map is shared by clients whose selectors
 * answer alike). A session remembers the decisions for its last few topics (acl/recent-decisions.ts):
 * a topic it repeats costs a string comparison.
 *
 * First match wins; no match denies. For a topic name (PUBLISH, a delivery) a rule matches when
 * its pattern matches the topic. For a SUBSCRIBE filter (rare: a plain ordered scan) an allow rule
 * matches only when its pattern contains the whole filter (acl/filter-relations.ts). A deny rule
 * matches, with `acl.overlap: filter` (the default), when it contains the filter; one that only
 * overlaps it is passed over and named in `filteredBy`: the filter may be granted by a later
 * allow rule, and the topics the deny covers are then held back on delivery (checks/acl.ts),
 * as a broker with `topic deny` lines never delivers them. With `acl.overlap: refuse` a deny rule
 * matches whenever the two overlap. An allow rule whose placeholder cannot be filled never
 * matches; a deny rule whose placeholder cannot be filled matches everything (fail closed).
 */
import type { BlockList } from 'node:net'
import type { AclConfig, AclRuleConfig } from '../config/types.js'
import { addressList, inAddressList } from '../net/address-list.js'
import { topicMatches } from '../protocol/topic-match.js'
import type { SessionState } from '../client/session-state.js'
import { filterContains, filtersOverlap } from './filter-relations.js'
import { hasPlaceholder } from '../config/placeholders.js'
import { substitute } from './placeholders.js'
import { NOT_REMEMBERED, RecentDecisions } from './recent-decisions.js'
import { TopicTrie } from './topic-trie.js'

/** What a decision needs of the rule that made it. */
export interface RuleOutcome {
  readonly name: string
  readonly allow: boolean
  readonly maxQos: number
  readonly retain: boolean
  readonly disconnect: boolean
}

/** A placeholder rule bound to one session: its pattern with the identity filled in (null: could not be). */
interface BoundPattern {
  readonly index: number
  readonly pattern: string | null
}

/** Distinct `applies` maps kept for sharing; past this many the cache starts over. */
const MAX_SHARED_APPLIES = 4096

class PolicyRule {
  readonly config: AclRuleConfig
  readonly outcome: RuleOutcome
  readonly dynamic: boolean
  readonly hasSelectors: boolean
  private readonly sources: BlockList | null
  private readonly users: ReadonlySet<string> | null
  private readonly groups: ReadonlySet<string> | null
  private readonly listeners: ReadonlySet<string> | null

  constructor(config: AclRuleConfig) {
    this.config = config
    this.outcome = Object.freeze({
      name: config.name,
      allow: config.effect === 'allow',
      maxQos: config.maxQos,
      retain: config.retain,
      disconnect: config.onDeny === 'disconnect',
    })
    this.dynamic = hasPlaceholder(config.topic)
    this.sources = config.sources === null ? null : addressList(config.sources)
    this.users = config.users === null ? null : new Set(config.users)
    this.groups = config.groups === null ? null : new Set(config.groups)
    this.listeners = config.listeners === null ? null : new Set(config.listeners)
    this.hasSelectors = config.anonymous !== null || config.sources !== null || config.users !== null || config.groups !== null || config.listeners !== null
  }

  appliesTo(s: SessionState): boolean {
    const c = this.config
    if (c.anonymous !== null && c.anonymous !== (s.username === null)) return false
    if (this.users !== null && (s.username === null || !this.users.has(s.username))) return false
    if (this.groups !== null && !s.groups.some((g) => this.groups!.has(g))) return false
    if (this.listeners !== null && !this.listeners.has(s.listener)) return false
    if (this.sources !== null && !inAddressList(this.sources, s.remoteAddress)) return false
    return true
  }
}

export class CompiledAcl {
  readonly rules: readonly PolicyRule[]
  private readonly publishTrie = new TopicTrie()
  private readonly readTrie = new TopicTrie()
  private readonly publishDynamic: number[] = []
  private readonly readDynamic: number[] = []
  private readonly anySelectors: boolean
  private readonly allApply: Uint8Array
  private readonly shared = new Map<string, Uint8Array>()
  /** `acl.overlap`: whether a deny rule that only overlaps a filter leaves it to later rules (filtered on delivery). */
  readonly filterOverlaps: boolean
  /**
   * Whether some subscription can be granted with topics held back on delivery: a subscribe deny
   * rule before a subscribe allow rule that may overlap it. False for the usual policy (denies last):
   * its sessions then read no delivery for the ACL.
   */
  readonly mayFilterDeliveries: boolean

  constructor(rules: readonly AclRuleConfig[], overlap: AclConfig['overlap'] = 'filter') {
    this.rules = rules.map((r) => new PolicyRule(r))
    this.filterOverlaps = overlap === 'filter'
    this.mayFilterDeliveries = this.filterOverlaps && denyBeforeOverlappingAllow(rules)
    this.rules.forEach((rule, i) => {
      const { publish, subscribe, topic } = rule.config
      if (publish) {
        if (rule.dynamic) this.publishDynamic.push(i)
        else this.publishTrie.add(topic, i)
      }
      if (subscribe) {
        if (rule.dynamic) this.readDynamic.push(i)
        else this.readTrie.add(topic, i)
      }
    })
    this.anySelectors = this.rules.some((r) => r.hasSelectors)
    this.allApply = new Uint8Array(this.rules.length).fill(1)
  }

  /** The session's view of the rules; call once the identity is known (after authentication). */
  bind(s: SessionState): SessionAcl {
    return new SessionAcl(this, this.appliesFor(s), this.bindPatterns(this.publishDynamic, s), this.bindPatterns(this.readDynamic, s), s)
  }

  private appliesFor(s: SessionState): Uint8Array {
    if (!this.anySelectors) return this.allApply
    const key = `${s.username === null ? 'A' : 'U' + s.username}\u0000${s.groups.join('\u0000')}\u0000\u0000${s.listener}\u0000${s.remoteAddress}`
    let applies = this.shared.get(key)
    if (applies === undefined) {
      applies = new Uint8Array(this.rules.length)
      for (let i = 0; i < this.rules.length; i++) applies[i] = this.rules[i]!.appliesTo(s) ? 1 : 0
      if (this.shared.size >= MAX_SHARED_APPLIES) this.shared.clear()
      this.shared.set(key, applies)
    }
    return applies
  }

  private bindPatterns(indices: number[], s: SessionState): BoundPattern[] {
    // map(), not push(): a list of exactly its size (per session).
    return indices.map((index) => ({ index, pattern: substitute(this.rules[index]!.config.topic, s) }))
  }

  /** First rule (publish or read action) matching `topic` among the indexed and the session's placeholder rules. */
  first(trie: 'publish' | 'read', topic: string, applies: Uint8Array, dynamic: readonly BoundPattern[]): number {
    const limit = this.rules.length
    let best = (trie === 'publish' ? this.publishTrie : this.readTrie).first(topic, applies, limit)
    for (let i = 0; i < dynamic.length; i++) {
      const d = dynamic[i]!
      if (d.index >= best) break
      if (applies[d.index] !== 1) continue
      const pattern = d.pattern
      if (pattern === null ? !this.rules[d.index]!.outcome.allow : topicMatches(pattern, topic)) {
        best = d.index
        break
      }
    }
    return best
  }
}

/** A subscribe deny rule followed by a subscribe allow rule that may overlap it (placeholders: assumed to). */
function denyBeforeOverlappingAllow(rules: readonly AclRuleConfig[]): boolean {
  for (let i = 0; i < rules.length; i++) {
    const deny = rules[i]!
    if (deny.effect !== 'deny' || !deny.subscribe) continue
    for (let j = i + 1; j < rules.length; j++) {
      const allow = rules[j]!
      if (allow.effect !== 'allow' || !allow.subscribe) continue
      if (hasPlaceholder(deny.topic) || hasPlaceholder(allow.topic) || filtersOverlap(deny.topic, allow.topic)) return true
    }
  }
  return false
}

export class SessionAcl {
  private readonly compiled: CompiledAcl
  private readonly applies: Uint8Array
  private readonly publishPatterns: readonly BoundPattern[]
  private readonly readPatterns: readonly BoundPattern[]
  private readonly state: SessionState
  /** The rule that decided the last call; null when none matched (default deny). */
  rule: RuleOutcome | null = null
  /**
   * After subscribeQos() granted a filter: the deny rules it only overlaps (their topics must be
   * held back on delivery), or null when there are none.
   */
  filteredBy: RuleOutcome[] | null = null
  /** Decisions for recent topics (made on first use: a session that never publishes holds none). */
  private recentPublish: RecentDecisions | null = null
  private recentRead: RecentDecisions | null = null

  constructor(compiled: CompiledAcl, applies: Uint8Array, publish: BoundPattern[], read: BoundPattern[], s: SessionState) {
    this.compiled = compiled
    this.applies = applies
    this.publishPatterns = publish
    this.readPatterns = read
    this.state = s
  }

  /** The index of the first rule of `action` matching `topic`: remembered, or found and remembered. */
  private ruleFor(action: 'publish' | 'read', recent: RecentDecisions, patterns: readonly BoundPattern[], topic: string): number {
    let index = recent.find(topic)
    if (index === NOT_REMEMBERED) {
      index = this.compiled.first(action, topic, this.applies, patterns)
      recent.remember(topic, index)
    }
    return index
  }

  private decided(index: number): RuleOutcome | null {
    const rules = this.compiled.rules
    return (this.rule = index < rules.length ? rules[index]!.outcome : null)
  }

  /** May the client publish to `topic` with this QoS and retain flag? */
  mayPublish(topic: string, qos: number, retain: boolean): boolean {
    const rule = this.decided(this.ruleFor('publish', this.recentPublish ??= new RecentDecisions(), this.publishPatterns, topic))
    if (rule === null || !rule.allow) return false
    return qos <= rule.maxQos && (!retain || rule.retain)
  }

  /** May the client receive messages published to `topic` (outbound check)? */
  mayRead(topic: string): boolean {
    const rule = this.decided(this.ruleFor('read', this.recentRead ??= new RecentDecisions(), this.readPatterns, topic))
    return rule !== null && rule.allow
  }

  /** May the client subscribe to `filter` (without `$share/GROUP/`) at this QoS? */
  maySubscribe(filter: string, qos: number): boolean {
    return qos <= this.subscribeQos(filter)
  }

  /**
   * The highest QoS the client may hold `filter` (without `$share/GROUP/`) at: the deciding allow
   * rule's maxQos, or -1 when it may not subscribe. Rare: an ordered scan.
   */
  subscribeQos(filter: string): number {
    const rules = this.compiled.rules
    const filterOverlaps = this.compiled.filterOverlaps
    let filteredBy: RuleOutcome[] | null = null
    this.rule = null
    this.filteredBy = null
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!
      if (!rule.config.subscribe || this.applies[i] !== 1) continue
      const pattern = rule.dynamic ? substitute(rule.config.topic, this.state) : rule.config.topic
      if (rule.outcome.allow) {
        if (pattern === null || !filterContains(pattern, filter)) continue
        this.rule = rule.outcome
        this.filteredBy = filteredBy
        return rule.outcome.maxQos
      }
      if (pattern !== null) {
        if (!filtersOverlap(pattern, filter)) continue
        if (filterOverlaps && !filterContains(pattern, filter)) {
          // Some of the filter's topics are denied, not all: a later rule decides the filter.
          (filteredBy ?? (filteredBy = [])).push(rule.outcome)
          continue
        }
      }
      this.rule = rule.outcome
      return -1
    }
    return -1
  }
}
