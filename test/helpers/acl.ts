/** ACL sections for tests, written as in a config file and compiled by the real loader. */
import { compileAcl } from '../../src/config/acl-compile.js'
import { aclSchema } from '../../src/config/acl-schema.js'
import type { AclConfig } from '../../src/config/types.js'

export function aclFrom(section: unknown): AclConfig {
  return compileAcl(aclSchema.parse(section), '')
}
