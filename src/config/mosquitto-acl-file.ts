/**
 * Import of a Mosquitto `acl_file`, so an operator can put Moat in front of a broker and keep the
 * broker's own rules:
 *
 *   topic [read|write|readwrite|deny] TOPIC      before any `user` line: anonymous clients
 *   user USERNAME                                 following `topic` lines apply to that user
 *   pattern [read|write|readwrite|deny] TOPIC    every client; %c = client id, %u = user name
 *
 * `read` becomes subscribe (and, with `acl.outbound`, delivery), `write` publish. Mosquitto lets a
 * `deny` line win wherever it stands, so deny lines are placed before the allow lines (first match
 * wins in Moat); within each group the file's order is kept.
 */
import type { AclRuleConfig } from './types.js'
import type { ConfigIssue } from '../errors.js'
import { patternShape } from './placeholders.js'
import { checkTopicFilter } from '../protocol/validate.js'

const ACCESS = new Set(['read', 'write', 'readwrite', 'deny'])

export interface ImportResult {
  readonly rules: AclRuleConfig[]
  readonly issues: ConfigIssue[]
}

function rule(name: string, effect: 'allow' | 'deny', access: string, topic: string, users: string[] | null, anonymous: boolean | null): AclRuleConfig {
  return {
    name,
    effect,
    publish: access !== 'read',
    subscribe: access !== 'write',
    topic,
    users,
    groups: null,
    listeners: null,
    sources: null,
    anonymous,
    maxQos: 2,
    retain: true,
    onDeny: 'reject',
  }
}

export function parseMosquittoAcl(text: string, file: string): ImportResult {
  const allows: AclRuleConfig[] = []
  const denies: AclRuleConfig[] = []
  const issues: ConfigIssue[] = []
  let user: string | null = null
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const at = `${file}:${i + 1}`
    const fail = (message: string): void => { issues.push({ file, path: '', line: i + 1, column: 1, message }) }
    const space = line.search(/\s/)
    const keyword = space < 0 ? line : line.slice(0, space)
    const rest = space < 0 ? '' : line.slice(space).trim()
    if (keyword === 'user') {
      if (rest === '') fail('`user` needs a user name')
      else user = rest
      continue
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      fail(`unknown keyword '${keyword}' (expected topic, user or pattern)`)
      continue
    }
    let access = 'readwrite'
    let topic = rest
    const firstSpace = rest.search(/\s/)
    const first = firstSpace < 0 ? rest : rest.slice(0, firstSpace)
    if (ACCESS.has(first) && firstSpace >= 0) {
      access = first
      topic = rest.slice(firstSpace).trim()
    }
    if (topic === '') {
      fail(`\`${keyword}\` needs a topic`)
      continue
    }
    if (keyword === 'pattern') topic = topic.replaceAll('%c', '{client_id}').replaceAll('%u', '{username}')
    else if (topic.includes('{')) {
      fail('braces in a topic line are not supported (Moat reads {…} as a placeholder)')
      continue
    }
    if (checkTopicFilter(patternShape(topic)) !== 0) {
      fail(`'${topic}' is not a valid topic filter`)
      continue
    }
    const users = keyword === 'topic' && user !== null ? [user] : null
    const anonymous = keyword === 'topic' && user === null ? true : null
    if (access === 'deny') denies.push(rule(at, 'deny', 'readwrite', topic, users, anonymous))
    else allows.push(rule(at, 'allow', access, topic, users, anonymous))
  }
  return { rules: [...denies, ...allows], issues }
}
