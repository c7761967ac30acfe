/** What a session needs from the proxy that owns it; shared by all sessions of one Moat. */
import type { PolicyStore } from '../policy/store.js'
import type { ConnectionLimiter } from '../limits/connections.js'
import type { Fleet } from '../fleet/fleet.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../stats/stats.js'
import type { ReadCoalescing } from '../net/read-coalescing.js'
import type { Session } from './session.js'
import type { Dialer, DialFailureLog } from './upstream.js'

export interface SessionContext {
  readonly policy: PolicyStore
  readonly stats: Stats
  readonly logger: Logger
  /** Failed upstream dials, logged once per interval with their number (upstream.ts). */
  readonly dialFailures: DialFailureLog
  /** Connection quotas (per user name once authenticated); absent: none. */
  readonly limiter?: ConnectionLimiter
  /** Bans and fleet-wide connection counts (fleet/fleet.ts); absent: none. */
  readonly fleet?: Fleet
  /** Told of every read (net/read-coalescing.ts); absent: reads are never coalesced. */
  readonly coalescing?: ReadCoalescing
  /** How the broker is dialled; absent: dialUpstream (upstream.ts). */
  readonly dial?: Dialer
  nextSessionId(): number
  sessionEnded(session: Session): void
}
