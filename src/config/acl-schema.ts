/**
 * The `acl` section: a list of rules (first match wins, no match denies), or a mapping with
 * `rules`, `mosquittoAclFile`, `outbound` and `shadow`.
 */
import { BlockList, isIP } from 'node:net'
import { z } from 'zod'
import { patternShape, unknownPlaceholders } from '../acl/placeholders.js'
import { checkTopicFilter } from '../protocol/validate.js'

const action = z.enum(['publish', 'subscribe', 'all'], { error: "expected publish, subscribe or all" })
const actions = z.union([action, z.array(action).min(1, { error: 'name at least one action' })], { error: 'expected publish, subscribe, all, or a list of them' })
const names = z.array(z.string().min(1, { error: 'must not be empty' }), { error: 'expected a list of names' }).min(1, { error: 'an empty list matches nobody: omit the key instead' })

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address. */
export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address, bits, extra] = value.split('/')
  if (extra !== undefined || address === undefined) return null
  const version = isIP(address)
  if (version === 0) return null
  const max = version === 4 ? 32 : 128
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN
  if (!(prefix >= 0 && prefix <= max)) return null
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

/** A BlockList that answers whether an address lies in any of `cidrs` (already validated). */
export function cidrList(cidrs: readonly string[]): BlockList {
  const list = new BlockList()
  for (const c of cidrs) {
    const parsed = parseCidr(c)!
    list.addSubnet(parsed.address, parsed.prefix, parsed.family)
  }
  return list
}

const cidr = z.string({ error: 'expected a CIDR such as 10.0.0.0/8' }).refine((v) => parseCidr(v) !== null, { error: 'expected a CIDR such as 10.0.0.0/8 or an IP address' })

const topicPattern = z.string({ error: 'expected a topic pattern' }).superRefine((value, ctx) => {
  const unknown = unknownPlaceholders(value)
  if (unknown.length > 0) {
    ctx.addIssue({ code: 'custom', message: `unknown placeholder ${unknown.join(', ')} (known: {client_id}, {username}, {cert.cn}, {claims.NAME})` })
    return
  }
  if (value.startsWith('$share/')) {
    ctx.addIssue({ code: 'custom', message: 'write the filter without $share/GROUP/: shared subscriptions are judged on their filter' })
    return
  }
  if (checkTopicFilter(patternShape(value)) !== 0) {
    ctx.addIssue({ code: 'custom', message: `'${value}' is not a valid topic filter ('#' only last and alone in its level, '+' alone in its level, not empty)` })
  }
})

export const aclRuleSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  allow: actions.optional(),
  deny: actions.optional(),
  topic: topicPattern,
  users: names.optional(),
  groups: names.optional(),
  listeners: names.optional(),
  sources: z.array(cidr, { error: 'expected a list of CIDRs' }).min(1).optional(),
  maxQos: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' }).optional(),
  retain: z.boolean({ error: 'expected true or false' }).optional(),
  onDeny: z.enum(['reject', 'disconnect'], { error: 'expected reject or disconnect' }).optional(),
}, { error: 'expected a rule: { allow|deny: ACTIONS, topic: PATTERN, … }' }).superRefine((rule, ctx) => {
  if ((rule.allow === undefined) === (rule.deny === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'a rule has exactly one of `allow` or `deny`' })
  }
  if (rule.deny !== undefined && (rule.maxQos !== undefined || rule.retain !== undefined)) {
    ctx.addIssue({ code: 'custom', message: '`maxQos` and `retain` limit what an allow rule grants; a deny rule denies everything it matches' })
  }
})

const rules = z.array(aclRuleSchema, { error: 'expected a list of rules' })

export const aclSchema = z.preprocess(
  (value) => (Array.isArray(value) ? { rules: value } : value),
  z.strictObject({
    rules: rules.default([]),
    mosquittoAclFile: z.string({ error: 'expected the path of a Mosquitto acl_file' }).min(1).optional(),
    outbound: z.boolean({ error: 'expected true or false' }).default(false),
    shadow: z.strictObject({ rules }, { error: 'expected { rules: [...] }' }).optional(),
  }, { error: 'expected a list of rules, or { rules, mosquittoAclFile, outbound, shadow }' }),
)

export type AclRuleInput = z.output<typeof aclRuleSchema>
export type AclSectionOutput = z.output<typeof aclSchema>
