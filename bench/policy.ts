/**
 * The realistic policy the benchmarks use, in one place: an ACL of N rules shaped like a fleet's
 * (device rules with placeholders first, static trees of other sites and products, some only for
 * operators, the benchmark's own tree near the end, a final deny), so that the benchmark's topics
 * are judged the way a real deployment judges them.
 */
import type { AclRuleConfig } from '../src/config/types.js'

function rule(i: number, effect: 'allow' | 'deny', topic: string, users: string[] | null = null): AclRuleConfig {
  return {
    name: `r${i}`, effect, publish: true, subscribe: true, topic,
    users, groups: null, listeners: null, sources: null, anonymous: null,
    maxQos: 2, retain: true, onDeny: 'reject',
  }
}

/** `size` rules (at least 6); the benchmark's topics `bench/…` are allowed by the second-to-last one. */
export function aclRules(size: number): AclRuleConfig[] {
  const rules: AclRuleConfig[] = [
    rule(0, 'deny', 'devices/{client_id}/firmware/#'),
    rule(1, 'allow', 'devices/{client_id}/#'),
    rule(2, 'allow', 'telemetry/{username}/+'),
    rule(3, 'allow', 'fleet/{username}/{client_id}/status'),
  ]
  for (let i = rules.length; i < size - 2; i++) {
    rules.push(rule(i, i % 3 === 0 ? 'deny' : 'allow', `site${i}/line${i % 7}/+/status`, i % 5 === 0 ? ['ops'] : null))
  }
  rules.push(rule(size - 2, 'allow', 'bench/#'))
  rules.push(rule(size - 1, 'deny', '#'))
  return rules
}

/** The same rules as the YAML `acl:` section of a config file. */
export function aclYaml(size: number): string {
  const lines = aclRules(size).map((r) => `  - { ${r.effect}: all, topic: "${r.topic}"${r.users === null ? '' : `, users: [${r.users.join(', ')}]`} }`)
  return `acl:\n${lines.join('\n')}\n`
}
