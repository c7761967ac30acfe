/**
 * Per-client quotas: distinct topic filters held (`maxSubscriptions`) and unacknowledged QoS 1/2
 * PUBLISH towards the broker (`maxInflight`, announced to 5.0 clients as Receive Maximum in the
 * CONNACK). The counts live in SessionState (a reload keeps them); the session removes a packet id
 * from `inflight` when the broker's PUBACK, PUBCOMP or refusing PUBREC passes.
 *
 * - A filter beyond the quota is refused (a Reject verdict: its SUBACK slot says 0x97 Quota
 *   exceeded, 0x80 on 3.1.1; the broker never sees it, the client stays); re-subscribing to a
 *   filter already held costs nothing, UNSUBSCRIBE gives it back.
 * - A QoS 1/2 PUBLISH beyond the in-flight quota: a 5.0 client broke the Receive Maximum it was
 *   told and is closed (DISCONNECT 0x93) [MQTT-3.3.4-9]; a 3.1.1 client, which cannot be told, is
 *   throttled: Moat stops reading it until the broker acknowledges one of its messages (the session
 *   wakes it on the ack). A retransmission (same packet id) is not counted twice.
 *   (This check runs after `rate`: a packet it holds was already charged to the rate buckets, and
 *   is charged again when it is re-checked. Running before `rate` would be worse: a packet the
 *   rate check then drops would keep an in-flight slot that no ack ever frees.)
 */
import type { ISubscription } from 'mqtt-packet'
import type { MoatConfig } from '../config/types.js'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import type { SessionState } from '../client/session-state.js'
import type { Check, CheckFactory } from './check.js'
import { nowMs } from '../limits/token-bucket.js'
import { disconnect, FORWARD, reject, throttle, type Verdict } from './verdict.js'

const TOO_MANY_SUBSCRIPTIONS = reject(ReasonCode.QuotaExceeded, 'quota_exceeded')
const TOO_MANY_INFLIGHT = disconnect(ReasonCode.ReceiveMaximumExceeded, 'receive_maximum_exceeded')
const WAIT_FOR_ACK = throttle(ReasonCode.ReceiveMaximumExceeded, 'receive_maximum_exceeded')
/** A 3.1.1 client over its in-flight quota is re-checked after this long if no ack wakes it first. */
const ACK_WAIT_MS = 1000


export class QuotaCheck implements Check {
  readonly name = 'quota'
  private readonly maxSubscriptions: number
  private readonly maxInflight: number

  constructor(maxSubscriptions: number | null, maxInflight: number | null) {
    this.maxSubscriptions = maxSubscriptions ?? Infinity
    this.maxInflight = maxInflight ?? Infinity
  }

  onSubscribe(subscription: ISubscription, s: SessionState): Verdict {
    if (this.maxSubscriptions === Infinity) return FORWARD
    const held = s.quotaFilters ?? (s.quotaFilters = new Set())
    if (held.has(subscription.topic)) return FORWARD
    if (held.size >= this.maxSubscriptions) return TOO_MANY_SUBSCRIPTIONS
    held.add(subscription.topic)
    return FORWARD
  }

  onUnsubscribe(filter: string, s: SessionState): Verdict {
    s.quotaFilters?.delete(filter)
    return FORWARD
  }

  onPublish(p: PublishView, s: SessionState): Verdict {
    if (p.qos === 0 || this.maxInflight === Infinity) return FORWARD
    const inflight = s.inflight ?? (s.inflight = new Set())
    if (inflight.has(p.packetId)) return FORWARD
    if (inflight.size >= this.maxInflight) {
      if (s.version === 5) return TOO_MANY_INFLIGHT
      s.throttleUntil = nowMs() + ACK_WAIT_MS
      return WAIT_FOR_ACK
    }
    inflight.add(p.packetId)
    return FORWARD
  }
}

export const quotaCheck: CheckFactory = {
  name: 'quota',
  create(config: MoatConfig) {
    const { maxSubscriptions, maxInflight } = config.limits
    if (maxSubscriptions === null && maxInflight === null) return null
    const check = new QuotaCheck(maxSubscriptions, maxInflight) // state is in SessionState
    return () => check
  },
}
