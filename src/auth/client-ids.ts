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
 */
import type { SessionState } from '../session/state.js'

export class ClientIdRegistry {
  private readonly holders = new Map<string, SessionState>()

  /** Makes `state` the holder of its client id; false when another identity holds it. */
  claim(state: SessionState): boolean {
    const id = state.clientId
    if (id === '') return true
    const holder = this.holders.get(id)
    if (holder !== undefined && holder !== state && holder.username !== state.username) return false
    this.holders.set(id, state)
    return true
  }

  /** Forgets `state` if it still holds its client id. */
  release(state: SessionState): void {
    if (this.holders.get(state.clientId) === state) this.holders.delete(state.clientId)
  }

  holder(clientId: string): SessionState | undefined {
    return this.holders.get(clientId)
  }

  get size(): number {
    return this.holders.size
  }
}
