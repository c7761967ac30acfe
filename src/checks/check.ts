/**
 * The interface every policy check implements. A check is created per session by
 * its factory, which compiled its part of the configuration once; a factory returns null when its
 * feature is off, so the chain never contains it.
 *
 * Only CONNECT may need I/O (an auth backend): onConnect may return a promise. Every other hook is
 * synchronous and runs per packet. Checks see decoded values, never bytes or sockets, and must not
 * keep a PublishView after the call returns.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import type { AuthRuntime } from '../auth/runtime.js'
import type { MoatConfig } from '../config/types.js'
import type { UserBudgetLeases } from '../limits/budget-leases.js'
import type { Logger } from '../log/logger.js'
import type { Stats } from '../stats/stats.js'
import type { PublishView } from '../protocol/publish.js'
import type { SessionState } from '../client/session-state.js'
import type { Verdict } from './verdict.js'

export interface Check {
  readonly name: string
  onConnect?(connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict>
  /** Client → broker PUBLISH. */
  onPublish?(p: PublishView, s: SessionState): Verdict
  /** Once per topic filter of a SUBSCRIBE. */
  onSubscribe?(subscription: ISubscription, s: SessionState): Verdict
  /** Once per topic filter of an UNSUBSCRIBE. */
  onUnsubscribe?(filter: string, s: SessionState): Verdict
  /** Every client packet other than CONNECT, PUBLISH and DISCONNECT, before its own hook (rates). */
  onPacket?(type: number, size: number, s: SessionState): Verdict
  /** Broker → client PUBLISH. */
  onDeliver?(p: PublishView, s: SessionState): Verdict
  onClose?(s: SessionState): void
  /**
   * After a policy reload, once per subscription the client holds (its filter as subscribed,
   * `$share/…` included): Forward keeps it, anything else revokes it at the broker.
   */
  reviewSubscription?(filter: string, s: SessionState): Verdict
  /**
   * After a policy reload, once per open session: may the client stay connected under the new
   * policy (its identity, already established, judged again)? Not Forward disconnects it.
   */
  reviewConnection?(s: SessionState): Verdict
}

/** What a factory may use besides the config: the process logger and counters, and state owned by the proxy, kept across reloads. */
export interface CheckEnv {
  readonly logger: Logger
  readonly stats: Stats
  /** Auth state (lockout table, client-id registry, counters). */
  readonly auth: AuthRuntime
  /** Fleet-wide budgets for the per-user rates (`cluster.redis`); absent: per-instance buckets. */
  readonly userBudgets?: UserBudgetLeases | undefined
}

export interface CheckFactory {
  readonly name: string
  /** Compile this check's slice of the config; null when the feature is off. */
  create(config: MoatConfig, env: CheckEnv): ((s: SessionState) => Check) | null
}

/** For a check that holds no per-session state: one instance serves every session. */
export function sharedCheck(check: Check): (s: SessionState) => Check {
  return () => check
}
