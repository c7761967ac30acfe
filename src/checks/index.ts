/**
 * The checks every session runs, in order. Adding a check is one file in this folder and one line
 * here; its factory decides from the config whether it is on.
 */
import type { CheckFactory } from './check.js'
import { authCheck } from './auth.js'
import { aclCheck } from './acl.js'
import { aclShadowCheck } from './acl-shadow.js'
import { protocolCheck } from './protocol.js'
import { virtualPatchCheck } from './virtual-patches.js'
import { quotaCheck } from './quota.js'
import { rateCheck } from './rate.js'
import { sizeCheck } from './size.js'

export const checkFactories: readonly CheckFactory[] = [
  protocolCheck,
  virtualPatchCheck, // known broker CVE triggers (docs/virtual-patching.md)
  authCheck,
  aclCheck,
  aclShadowCheck,
  sizeCheck, // limits: keep size, rate, quota last and in this order (a throttled packet is re-run)
  rateCheck,
  quotaCheck,
]
