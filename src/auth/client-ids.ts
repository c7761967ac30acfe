/**
 * The client ids of the sessions Moat currently holds, with the identity that holds each, so that
 * one device cannot take over another's broker session by reusing its client id.
 *
 * The rule (`auth.clientId.takeover: same-identity`, the default): a CONNECT whose client id is
 * held by a live session is admitted only when its authenticated user name equals the holder's
 * (two anonymous clients count as the same identity); it then becomes the holder (the broker
 * takes the session over, as MQTT specifies). Otherwise it is refused with "client identifier not
 * valid" (5.0 0x85, 3.1.1 return code 2) and the holder stays connected. An empty client id (the
 * broker assigns one) is never held. `takeover: allow` turns the rule off.
 *
 * One entry per session (released when the session ends), so the map is bounded by connections.
 * A refused newcomer never displaces the holder: the holder stays registered until it ends.
 */
import type { SessionState } from '../client/session-state.js'

export class ClientIdRegistry {
  /**
   * Sessions holding each client id, all of the same identity (a reconnect may overlap the old
   * session, and a later check may still refuse the newcomer: the older holder must stay registered).
   */
  private readonly holders = new Map<string, SessionState[]>()

  /** Adds `state` to the holders of its client id; false when another identity holds it. */
  claim(state: SessionState): boolean {
    const id = state.clientId
    if (id === '') return true
    const list = this.holders.get(id)
    if (list === undefined) {
      this.holders.set(id, [state])
      return true
    }
    if (list[0]!.username !== state.username) return false
    if (!list.includes(state)) list.push(state)
    return true
  }

  /** Forgets `state` as a holder of its client id. */
  release(state: SessionState): void {
    const list = this.holders.get(state.clientId)
    if (list === undefined) return
    const at = list.indexOf(state)
    if (at < 0) return
    list.splice(at, 1)
    if (list.length === 0) this.holders.delete(state.clientId)
  }

  /** The identity (user name) holding `clientId`, or undefined when nobody does. */
  holder(clientId: string): SessionState | undefined {
    return this.holders.get(clientId)?.[0]
  }

  get size(): number {
    return this.holders.size
  }
}
