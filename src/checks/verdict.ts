/**
 * The answer of a check: forward the packet, reject it with a reason (the
 * client gets the protocol's refusal and stays connected), or disconnect the client with a reason.
 * Verdicts are frozen singletons cached per (action, reason code, why): deciding allocates nothing.
 */
import type { DenyReason } from '../stats/reasons.js'

export const Action = {
  Forward: 0,
  Reject: 1,
  Disconnect: 2,
  /**
   * Not now: the session stops reading the client until `SessionState.throttleUntil`, then runs
   * this same packet through the chain again (nothing is lost; TCP pushes back on the client).
   */
  Throttle: 3,
} as const
export type Action = (typeof Action)[keyof typeof Action]

export interface Verdict {
  readonly action: Action
  /** MQTT 5.0 reason code; the session maps it to the client's version. */
  readonly reason: number
  /** Why, as a snake_case name shared by logs and metric labels. */
  readonly why: DenyReason
}

export const FORWARD: Verdict = Object.freeze({ action: Action.Forward, reason: 0, why: 'ok' as DenyReason })

const cache = new Map<string, Verdict>()

function verdict(action: Action, reason: number, why: DenyReason): Verdict {
  const key = `${action}:${reason}:${why}`
  let v = cache.get(key)
  if (v === undefined) {
    v = Object.freeze({ action, reason, why })
    cache.set(key, v)
  }
  return v
}

/** Refuse this packet only. Build once (at check creation) and return the same object per packet. */
export function reject(reason: number, why: DenyReason): Verdict {
  return verdict(Action.Reject, reason, why)
}

/** Hold this packet (and the client) until `SessionState.throttleUntil`, then check it again. */
export function throttle(reason: number, why: DenyReason): Verdict {
  return verdict(Action.Throttle, reason, why)
}

/** Refuse this packet and close the client. */
export function disconnect(reason: number, why: DenyReason): Verdict {
  return verdict(Action.Disconnect, reason, why)
}
