/** A CheckEnv of its own, for a chain built outside a running Moat (tests, `moat check`). */
import { pino } from 'pino'
import { AuthRuntime } from '../auth/runtime.js'
import { AuthStats } from '../stats/auth-stats.js'
import type { Logger } from '../log/logger.js'
import { Stats } from '../stats/stats.js'
import type { CheckEnv } from './check.js'

export function detachedCheckEnv(logger: Logger = pino({ level: 'silent' })): CheckEnv {
  return { logger, stats: new Stats(), auth: new AuthRuntime(new AuthStats(), logger) }
}
