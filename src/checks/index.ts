/**
 * The checks every session runs, in order. Adding a check is one file in this folder and one line
 * here; its factory decides from the config whether it is on.
 */
import type { CheckFactory } from './check.js'
import { authCheck } from './auth.js'
import { protocolCheck } from './protocol.js'

export const checkFactories: readonly CheckFactory[] = [
  protocolCheck,
  authCheck,
]
