/**
 * The ACL matcher, table-driven: publish topics and subscribe filters against rules, with
 * placeholders, containment, selectors and the injection cases (a crafted identity must never
 * widen a rule).
 */
import { describe, expect, it } from 'vitest'
import { CompiledAcl } from '../../../src/acl/session-acl.js'
import { unshare } from '../../../src/acl/filter-relations.js'
import type { AclRuleConfig } from '../../../src/config/types.js'
import { plainConnInfo, type ClientCertificate } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'

function rule(effect: 'allow' | 'deny', actions: 'publish' | 'subscribe' | 'all', topic: string, extra: Partial<AclRuleConfig> = {}): AclRuleConfig {
  return {
    name: `${effect} ${actions} ${topic}`, effect, topic,
    publish: actions !== 'subscribe', subscribe: actions !== 'publish',
    users: null, groups: null, listeners: null, sources: null, anonymous: null,
    maxQos: 2, retain: true, onDeny: 'reject', ...extra,
  }
}

interface Who { clientId?: string; username?: string | null; cn?: string; claims?: Record<string, string>; groups?: string[]; listener?: string; address?: string }

function session(who: Who): SessionState {
  const certificate: ClientCertificate | null = who.cn === undefined ? null : { subject: `CN=${who.cn}`, cn: who.cn, sans: [], fingerprint256: 'AA' }
  const s = new SessionState(1, { ...plainConnInfo(who.listener ?? 'mqtt', who.address ?? '192.0.2.1', 1), certificate })
  s.clientId = who.clientId ?? 'dev1'
  s.username = who.username === undefined ? 'alice' : who.username
  s.claims = who.claims ?? null
  s.groups = who.groups ?? []
  return s
}

const devices = [
  rule('allow', 'all', 'devices/{client_id}/#'),
  rule('allow', 'subscribe', 'public/#'),
  rule('deny', 'all', '#'),
]

// [title, rules, who, topic, may publish]
const publishCases: Array<[string, AclRuleConfig[], Who, string, boolean]> = [
  ['own device topic', devices, {}, 'devices/dev1/temp', true],
  ['own device root (a/# covers a)', devices, {}, 'devices/dev1', true],
  ['another device', devices, {}, 'devices/dev2/temp', false],
  ['a longer id that starts the same', devices, {}, 'devices/dev10/temp', false],
  ['subscribe-only rule does not grant publish', devices, {}, 'public/news', false],
  ['no rule matches: default deny', [rule('allow', 'publish', 'a/#')], {}, 'b', false],
  ['$SYS is not matched by #', [rule('allow', 'all', '#')], {}, '$SYS/broker/uptime', false],
  ['$SYS allowed only when named', [rule('allow', 'publish', '$SYS/#')], {}, '$SYS/x', true],
  ['first match wins: deny before allow', [rule('deny', 'publish', 'a/secret'), rule('allow', 'publish', 'a/#')], {}, 'a/secret', false],
  ['first match wins: allow before deny', [rule('allow', 'publish', 'a/#'), rule('deny', 'publish', 'a/secret')], {}, 'a/secret', true],
  ['{username}', [rule('allow', 'publish', 'users/{username}/#')], { username: 'alice' }, 'users/alice/x', true],
  ['{username} of someone else', [rule('allow', 'publish', 'users/{username}/#')], { username: 'alice' }, 'users/bob/x', false],
  ['{cert.cn}', [rule('allow', 'publish', 'cn/{cert.cn}')], { cn: 'sensor-7' }, 'cn/sensor-7', true],
  ['{cert.cn} without a certificate never matches', [rule('allow', 'publish', 'cn/{cert.cn}')], {}, 'cn/', false],
  ['{claims.site}', [rule('allow', 'publish', 'sites/{claims.site}/#')], { claims: { site: 'berlin' } }, 'sites/berlin/t', true],
  ['a missing claim never matches', [rule('allow', 'publish', 'sites/{claims.site}/#')], { claims: {} }, 'sites//t', false],
  // Injection: a crafted identity cannot widen a rule.
  ['client id "#" does not become a wildcard', devices, { clientId: '#' }, 'devices/dev2/temp', false],
  ['client id "+" does not become a wildcard', devices, { clientId: '+' }, 'devices/dev2/temp', false],
  ['client id with "/" cannot climb levels', devices, { clientId: 'dev1/../dev2' }, 'devices/dev1/../dev2/x', false],
  ['user name "#" does not become a wildcard', [rule('allow', 'publish', 'users/{username}/#')], { username: '#' }, 'users/bob/x', false],
  ['anonymous client: {username} never matches', [rule('allow', 'publish', 'users/{username}/#')], { username: null }, 'users//x', false],
  ['deny rule with an unfillable placeholder fails closed', [rule('deny', 'publish', 'users/{username}/admin'), rule('allow', 'publish', '#')], { username: 'a/b' }, 'anything', false],
  // Selectors
  ['users selector matches', [rule('allow', 'publish', 'ops/#', { users: ['alice'] })], {}, 'ops/x', true],
  ['users selector does not match', [rule('allow', 'publish', 'ops/#', { users: ['bob'] })], {}, 'ops/x', false],
  ['groups selector', [rule('allow', 'publish', 'ops/#', { groups: ['admins'] })], { groups: ['staff', 'admins'] }, 'ops/x', true],
  ['listeners selector', [rule('allow', 'publish', 'ops/#', { listeners: ['internal'] })], { listener: 'mqtt' }, 'ops/x', false],
  ['sources selector inside', [rule('allow', 'publish', 'ops/#', { sources: ['10.0.0.0/8'] })], { address: '10.1.2.3' }, 'ops/x', true],
  ['sources selector, IPv4-mapped address', [rule('allow', 'publish', 'ops/#', { sources: ['10.0.0.0/8'] })], { address: '::ffff:10.1.2.3' }, 'ops/x', true],
  ['sources selector outside', [rule('allow', 'publish', 'ops/#', { sources: ['10.0.0.0/8'] })], { address: '192.0.2.1' }, 'ops/x', false],
  ['anonymous-only rule (Mosquitto import) skips a named user', [rule('allow', 'publish', 'x', { anonymous: true })], { username: 'alice' }, 'x', false],
  ['anonymous-only rule applies to an anonymous client', [rule('allow', 'publish', 'x', { anonymous: true })], { username: null }, 'x', true],
]

// [title, rules, filter, may subscribe]
const subscribeCases: Array<[string, AclRuleConfig[], string, boolean]> = [
  ['own tree', devices, 'devices/dev1/#', true],
  ['own single topic', devices, 'devices/dev1/temp', true],
  ['+ reaching other devices', devices, 'devices/+/temp', false],
  ['everything', devices, '#', false],
  ['two levels of anything', devices, '+/+', false],
  ['$SYS', devices, '$SYS/#', false],
  ['shared subscription judged on its filter: #', devices, '$share/g/#', false],
  ['shared subscription on an allowed filter', devices, '$share/g/devices/dev1/#', true],
  ['public tree', devices, 'public/news/#', true],
  // A deny rule decides a filter it contains; one it only overlaps is left to the later rules (acl.overlap: filter).
  ['deny overlapping a broad filter: a later allow grants it', [rule('deny', 'subscribe', 'secret/#'), rule('allow', 'subscribe', '#')], '#', true],
  ['deny containing the filter', [rule('deny', 'subscribe', 'secret/#'), rule('allow', 'subscribe', '#')], 'secret/+', false],
  ['deny of one topic, filter of that topic', [rule('deny', 'subscribe', 'test/nosubscribe'), rule('allow', 'subscribe', '#')], 'test/nosubscribe', false],
  ['deny overlapping, no later allow contains it', [rule('deny', 'subscribe', 'secret/#'), rule('allow', 'subscribe', 'public/#')], '#', false],
  ['deny not overlapping', [rule('deny', 'subscribe', 'secret/#'), rule('allow', 'subscribe', '#')], 'public/#', true],
  ['allow that only overlaps is skipped (default deny)', [rule('allow', 'subscribe', 'a/#'), rule('allow', 'subscribe', 'b/#')], '+/x', false],
]

describe('ACL matcher: publish', () => {
  for (const [title, rules, who, topic, expected] of publishCases) {
    it(`${title}: ${topic} → ${expected ? 'allow' : 'deny'}`, () => {
      const acl = new CompiledAcl(rules).bind(session(who))
      expect(acl.mayPublish(topic, 0, false)).toBe(expected)
    })
  }

  it('maxQos and retain limit what an allow rule grants, naming the rule', () => {
    const acl = new CompiledAcl([rule('allow', 'publish', 'a/#', { maxQos: 1, retain: false })]).bind(session({}))
    expect(acl.mayPublish('a/b', 1, false)).toBe(true)
    expect(acl.mayPublish('a/b', 2, false)).toBe(false)
    expect(acl.mayPublish('a/b', 0, true)).toBe(false)
    expect(acl.rule?.name).toBe('allow publish a/#')
  })
})

describe('ACL matcher: subscribe (containment)', () => {
  for (const [title, rules, filter, expected] of subscribeCases) {
    it(`${title}: ${filter} → ${expected ? 'allow' : 'deny'}`, () => {
      const acl = new CompiledAcl(rules).bind(session({}))
      expect(acl.maySubscribe(unshare(filter), 0)).toBe(expected)
    })
  }

  it('maxQos bounds the QoS a filter may be held at (the check downgrades to it)', () => {
    const acl = new CompiledAcl([rule('allow', 'subscribe', 'a/#', { maxQos: 0 }), rule('deny', 'all', '#')]).bind(session({}))
    expect(acl.maySubscribe('a/b', 0)).toBe(true)
    expect(acl.maySubscribe('a/b', 1)).toBe(false)
    expect(acl.subscribeQos('a/b')).toBe(0)
    expect(acl.subscribeQos('b/c')).toBe(-1)
  })

  it('reading (outbound) follows the subscribe rules as topic matches', () => {
    const acl = new CompiledAcl(devices).bind(session({}))
    expect(acl.mayRead('devices/dev1/x')).toBe(true)
    expect(acl.mayRead('public/a')).toBe(true)
    expect(acl.mayRead('devices/dev2/x')).toBe(false)
  })
})

describe('ACL matcher: subscriptions that overlap a deny rule (acl.overlap)', () => {
  const nosubscribe = [rule('deny', 'subscribe', 'test/nosubscribe', { onDeny: 'disconnect' }), rule('allow', 'subscribe', '#', { maxQos: 1 })]

  it('filter (the default): # is granted by the allow rule and names the deny rule whose topics are held back', () => {
    const acl = new CompiledAcl(nosubscribe).bind(session({}))
    expect(acl.subscribeQos('#')).toBe(1)
    expect(acl.rule?.name).toBe('allow subscribe #')
    expect(acl.filteredBy?.map((r) => r.name)).toEqual(['deny subscribe test/nosubscribe'])
    expect(acl.subscribeQos('test/+')).toBe(1)
    expect(acl.filteredBy).toHaveLength(1)
    expect(acl.subscribeQos('other/#')).toBe(1)
    expect(acl.filteredBy).toBeNull() // nothing denied in it
    expect(acl.subscribeQos('test/nosubscribe')).toBe(-1)
    expect(acl.rule).toMatchObject({ name: 'deny subscribe test/nosubscribe', disconnect: true })
    // On delivery, the deny rule decides its topics.
    expect(acl.mayRead('test/nosubscribe')).toBe(false)
    expect(acl.mayRead('test/ok')).toBe(true)
  })

  it('refuse: a deny rule refuses every filter it overlaps, as before', () => {
    const acl = new CompiledAcl(nosubscribe, 'refuse').bind(session({}))
    expect(acl.subscribeQos('#')).toBe(-1)
    expect(acl.subscribeQos('+/+')).toBe(-1)
    expect(acl.rule?.name).toBe('deny subscribe test/nosubscribe')
    expect(acl.subscribeQos('other/#')).toBe(1)
    expect(acl.filteredBy).toBeNull()
  })

  it('a deny rule whose placeholder cannot be filled still refuses everything (fail closed)', () => {
    const rules = [rule('deny', 'subscribe', 'users/{username}/admin'), rule('allow', 'subscribe', '#')]
    expect(new CompiledAcl(rules).bind(session({ username: 'a/b' })).subscribeQos('#')).toBe(-1)
    expect(new CompiledAcl(rules).bind(session({ username: 'alice' })).subscribeQos('#')).toBe(2)
  })

  it('only a policy with a subscribe deny before an allow it may overlap needs deliveries judged', () => {
    const needs = (rules: AclRuleConfig[], overlap: 'filter' | 'refuse' = 'filter'): boolean => new CompiledAcl(rules, overlap).mayFilterDeliveries
    expect(needs(nosubscribe)).toBe(true)
    expect(needs(nosubscribe, 'refuse')).toBe(false)
    expect(needs(devices)).toBe(false) // the usual policy: the deny comes last
    expect(needs([rule('deny', 'publish', 'a/#'), rule('allow', 'all', '#')])).toBe(false) // a publish-only deny
    expect(needs([rule('deny', 'subscribe', 'a/#'), rule('allow', 'subscribe', 'b/#')])).toBe(false) // disjoint
    expect(needs([rule('deny', 'subscribe', 'a/{client_id}'), rule('allow', 'subscribe', 'b/#')])).toBe(true) // placeholders: assumed to overlap
  })

  it('on random rule lists: a grant without filteredBy makes every topic of the filter readable; with it, only the named denies hold topics back', async () => {
    const fc = (await import('fast-check')).default
    const { topicMatches } = await import('../../../src/protocol/topic-match.js')
    const level = fc.constantFrom('a', 'b', '{client_id}', '+')
    const pattern = fc.tuple(fc.array(level, { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
    const ruleArb = fc.record({ effect: fc.constantFrom('allow' as const, 'deny' as const), topic: pattern })
    const filterArb = fc.tuple(fc.array(fc.constantFrom('a', 'b', 'dev1', '+'), { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
    const topics: string[] = []
    for (const x of ['a', 'b', 'dev1']) for (const y of ['', '/a', '/b', '/dev1']) for (const z of ['', '/a', '/b']) if (y !== '' || z === '') topics.push(x + y + z)
    fc.assert(fc.property(fc.array(ruleArb, { maxLength: 6 }), filterArb, (specs, filter) => {
      const rules = specs.map((r, i) => ({ ...rule(r.effect, 'subscribe', r.topic), name: `r${i}` }))
      const acl = new CompiledAcl(rules).bind(session({ clientId: 'dev1' }))
      if (acl.subscribeQos(filter) < 0) return
      const filteredBy = acl.filteredBy
      if (filteredBy !== null) expect(new CompiledAcl(rules).mayFilterDeliveries).toBe(true)
      const held = new Set((filteredBy ?? []).map((r) => r.name))
      for (const t of topics) {
        if (!topicMatches(filter, t) || acl.mayRead(t)) continue
        expect(filteredBy, `${filter} granted, ${t} unreadable`).not.toBeNull()
        expect(held.has(acl.rule!.name)).toBe(true)
      }
    }), { numRuns: 2000 })
  })
})

describe('ACL matcher: the indexed decision equals the plain ordered scan', () => {
  it('on random rule lists, identities and topics', async () => {
    const fc = (await import('fast-check')).default
    const { topicMatches } = await import('../../../src/protocol/topic-match.js')
    const { substitute } = await import('../../../src/acl/placeholders.js')
    const level = fc.constantFrom('a', 'b', '{client_id}', '+', '$s')
    const pattern = fc.tuple(fc.array(level, { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
      .filter((p) => !/^(\$s|[+#])?$/.test(p) || p === '+')
    const ruleArb = fc.record({
      effect: fc.constantFrom('allow' as const, 'deny' as const),
      actions: fc.constantFrom('publish' as const, 'subscribe' as const, 'all' as const),
      topic: pattern,
      users: fc.option(fc.constant(['alice']), { nil: undefined }),
    })
    const topicArb = fc.array(fc.constantFrom('a', 'b', 'dev1', '$s', ''), { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t.length > 0)
    // Up to 16 topics from a small alphabet: repeats and evictions of the remembered decisions.
    fc.assert(fc.property(fc.array(ruleArb, { maxLength: 10 }), fc.constantFrom('dev1', '#', 'a/b', 'b'), fc.constantFrom('alice', 'bob'), fc.array(topicArb, { minLength: 1, maxLength: 16 }), (specs, clientId, username, topics) => {
      const rules = specs.map((r) => rule(r.effect, r.actions, r.topic, { users: r.users ?? null }))
      const s = session({ clientId, username })
      const acl = new CompiledAcl(rules).bind(s)
      for (const t of topics) {
        let expected = false
        let decider: string | null = null
        for (const r of rules) {
          if (!r.publish || (r.users !== null && !r.users.includes(username))) continue
          const p = substitute(r.topic, s)
          if (p === null ? r.effect === 'deny' : topicMatches(p, t)) {
            expected = r.effect === 'allow'
            decider = r.name
            break
          }
        }
        expect(acl.mayPublish(t, 0, false)).toBe(expected)
        expect(acl.rule?.name ?? null).toBe(decider)
      }
    }), { numRuns: 1500 })
  })
})

describe('ACL matcher: decisions remembered for recent topics', () => {
  const rules = [
    rule('deny', 'all', 'devices/{client_id}/firmware/#', { name: 'no firmware' }),
    rule('allow', 'all', 'devices/{client_id}/#', { name: 'own tree' }),
    rule('allow', 'subscribe', 'public/#', { name: 'public' }),
    rule('deny', 'all', '#', { name: 'tail' }),
  ]

  it('a repeated topic gets the same decision and names the same rule; a topic that only starts the same is decided afresh', () => {
    const acl = new CompiledAcl(rules).bind(session({ clientId: 'dev1' }))
    const seen: Array<[boolean, string | undefined]> = []
    for (const topic of ['devices/dev1', 'devices/dev1', 'devices/dev10/temp', 'devices/dev1', 'devices/dev1/firmware/x', 'devices/dev1/temp']) {
      seen.push([acl.mayPublish(topic, 0, false), acl.rule?.name])
    }
    expect(seen).toEqual([[true, 'own tree'], [true, 'own tree'], [false, 'tail'], [true, 'own tree'], [false, 'no firmware'], [true, 'own tree']])
  })

  it('QoS and retain are judged on every call, not remembered with the rule', () => {
    const acl = new CompiledAcl([rule('allow', 'publish', 'a/#', { maxQos: 1, retain: false })]).bind(session({}))
    expect(acl.mayPublish('a/b', 1, false)).toBe(true)
    expect(acl.mayPublish('a/b', 2, false)).toBe(false)
    expect(acl.mayPublish('a/b', 0, true)).toBe(false)
    expect(acl.mayPublish('a/b', 0, false)).toBe(true)
  })

  it('more topics than it remembers, in turn, and topics too long to remember: every decision is still right', () => {
    const acl = new CompiledAcl(rules).bind(session({ clientId: 'dev1' }))
    const long = `devices/dev1/${'x'.repeat(200)}`
    const topics = ['devices/dev1/a', 'devices/dev2/a', 'devices/dev1/b', 'devices/dev1/firmware/1', 'x/y', 'devices/dev1/c', long, `devices/dev2/${'x'.repeat(200)}`]
    const expected = [true, false, true, false, false, true, true, false]
    for (let round = 0; round < 3; round++) {
      expect(topics.map((t) => acl.mayPublish(t, 0, false))).toEqual(expected)
    }
  })

  it('reading keeps its own decisions: a topic allowed to publish is not thereby readable', () => {
    const acl = new CompiledAcl([rule('allow', 'publish', 'a/#'), rule('allow', 'subscribe', 'b/#')]).bind(session({}))
    expect(acl.mayPublish('a/1', 0, false)).toBe(true)
    expect(acl.mayRead('a/1')).toBe(false)
    expect(acl.mayRead('b/1')).toBe(true)
    expect(acl.mayPublish('b/1', 0, false)).toBe(false)
    expect(acl.mayRead('a/1')).toBe(false)
  })
})
