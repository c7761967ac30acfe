/** A CheckEnv of its own, for a chain built outside a running Moat (tests, `moat check`). */
import { pino } from 'pino'
import { AuthRuntime } from '../auth/runtime.js'
import { AuthStats } from '../auth/stats.js'
import type { Logger } from '../log/logger.js'
import type { CheckEnv } from './check.js'

export function detachedCheckEnv(logger: Logger = pino({ level: 'silent' })): CheckEnv {
  return { auth: new AuthRuntime(new AuthStats(), logger) }
}
