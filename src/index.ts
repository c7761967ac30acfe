/** Programmatic API. */
export { Moat, type MoatOptions } from './moat.js'
export { loadConfig, parseConfig, configFromObject } from './config/load.js'
export type { MoatConfig } from './config/types.js'
export { MoatError, ConfigError } from './errors.js'
export type { Check, CheckFactory } from './checks/check.js'
export { FORWARD, reject, disconnect, Action, type Verdict } from './checks/verdict.js'
