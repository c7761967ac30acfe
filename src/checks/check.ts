/**
 * The interface every policy check implements (STYLE section 3). A check is created per session by
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
import type { PublishView } from '../protocol/publish.js'
import type { SessionState } from '../session/state.js'
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
  /** Broker → client PUBLISH. */
  onDeliver?(p: PublishView, s: SessionState): Verdict
  onClose?(s: SessionState): void
}

/** What a factory may use besides the config: state owned by the proxy, kept across reloads. */
export interface CheckEnv {
  readonly auth: AuthRuntime
}

export interface CheckFactory {
  readonly name: string
  /** Compile this check's slice of the config; null when the feature is off. */
  create(config: MoatConfig, env: CheckEnv): ((s: SessionState) => Check) | null
}
