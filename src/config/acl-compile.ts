/** The `acl` section as validated by the schema → AclConfig (reading an imported Mosquitto file). */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import type { AclSectionOutput, AclRuleInput } from './acl-schema.js'
import type { AclConfig, AclRuleConfig } from './types.js'
import { ConfigError } from '../errors.js'
import { READ_FILES, type ConfigFiles } from './file-reads.js'
import { parseMosquittoAcl } from './mosquitto-acl-file.js'

function expand(value: AclRuleInput['allow']): { publish: boolean; subscribe: boolean } {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value]
  return {
    publish: list.includes('publish') || list.includes('all'),
    subscribe: list.includes('subscribe') || list.includes('all'),
  }
}

function fromInput(r: AclRuleInput, path: string): AclRuleConfig {
  const effect = r.allow !== undefined ? 'allow' : 'deny'
  return {
    name: r.name ?? path,
    effect,
    ...expand(r.allow ?? r.deny),
    topic: r.topic,
    users: r.users ?? null,
    groups: r.groups ?? null,
    listeners: r.listeners ?? null,
    sources: r.sources ?? null,
    anonymous: null,
    maxQos: r.maxQos ?? 2,
    retain: r.retain ?? true,
    onDeny: r.onDeny ?? 'reject',
  }
}

/** `configFile` ('' when built in code) anchors a relative `mosquittoAclFile`. */
export function compileAcl(section: AclSectionOutput, configFile: string, files: ConfigFiles = READ_FILES): AclConfig {
  const rules = section.rules.map((r, i) => fromInput(r, `acl.rules.${i}`))
  const path = section.mosquittoAclFile === undefined ? null : resolve(configFile === '' ? process.cwd() : dirname(configFile), section.mosquittoAclFile)
  if (path !== null && !files.skip('acl.mosquittoAclFile', path)) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file: configFile, path: 'acl.mosquittoAclFile', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }])
    }
    const imported = parseMosquittoAcl(text, path)
    if (imported.issues.length > 0) throw new ConfigError('MOAT_ERR_CONFIG_INVALID', imported.issues)
    rules.push(...imported.rules)
  }
  return {
    rules,
    outbound: section.outbound,
    overlap: section.overlap,
    shadow: section.shadow === undefined ? null : section.shadow.rules.map((r, i) => fromInput(r, `acl.shadow.rules.${i}`)),
  }
}
