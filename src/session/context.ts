/** What a session needs from the proxy that owns it; shared by all sessions of one Moat. */
import type { CheckChain } from '../checks/chain.js'
import type { MoatConfig } from '../config/types.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../metrics/stats.js'
import type { Session } from './session.js'

export interface SessionContext {
  readonly config: MoatConfig
  readonly chain: CheckChain
  readonly stats: Stats
  readonly logger: Logger
  nextSessionId(): number
  sessionEnded(session: Session): void
}
