/**
 * The `acl` section: a list of rules (first match wins, no match denies), or a mapping with
 * `rules`, `mosquittoAclFile`, `outbound`, `overlap` and `shadow`.
 */
import { z } from 'zod'
import { patternShape, unknownPlaceholders } from './placeholders.js'
import { addressList } from '../net/address-list.js'
import { checkTopicFilter } from '../protocol/validate.js'

const action = z.enum(['publish', 'subscribe', 'all'], { error: "expected publish, subscribe or all" })
const actions = z.union([action, z.array(action).min(1, { error: 'name at least one action' })], { error: 'expected publish, subscribe, all, or a list of them' })
const names = z.array(z.string().min(1, { error: 'must not be empty' }), { error: 'expected a list of names' }).min(1, { error: 'an empty list matches nobody: omit the key instead' })

function isAddressListEntry(value: string): boolean {
  try {
    addressList([value])
    return true
  } catch {
    return false
  }
}

const cidr = z.string({ error: 'expected a CIDR such as 10.0.0.0/8' }).refine(isAddressListEntry, { error: 'expected a CIDR such as 10.0.0.0/8 or an IP address' })

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
    overlap: z.enum(['filter', 'refuse'], { error: 'expected filter or refuse' }).default('filter'),
    shadow: z.strictObject({ rules }, { error: 'expected { rules: [...] }' }).optional(),
  }, { error: 'expected a list of rules, or { rules, mosquittoAclFile, outbound, overlap, shadow }' }),
)

export type AclRuleInput = z.output<typeof aclRuleSchema>
export type AclSectionOutput = z.output<typeof aclSchema>
