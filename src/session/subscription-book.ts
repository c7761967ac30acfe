/**
 * What a session knows about its client's subscriptions, so that the ACL can act on them
 * per filter and after a reload:
 *
 * - A SUBSCRIBE in flight (client → broker, waiting for the SUBACK): which filters went to the
 *   broker and, when some were refused by Moat, the codes to merge back so the client gets one
 *   SUBACK in its own order with its own packet id.
 * - Grants: filters the broker accepted, kept in SessionState.subscriptions.
 * - Revocations: after a reload took a subscription away, Moat sends the broker an UNSUBSCRIBE on
 *   the client's behalf (packet ids counted down from 65535, the far end of MQTT.js-style
 *   counting-up ids) and swallows its UNSUBACK; until then deliveries that only the revoked
 *   filter would carry are held back.
 */
import { unshare } from '../acl/filter-relations.js'
import { readAckWithCodes, suback, unsubscribe } from '../protocol/acks.js'
import { topicMatches } from '../protocol/topic-match.js'
import type { SessionState } from '../client/session-state.js'

/** SUBSCRIBEs awaiting their SUBACK, per session; a client past this many is refused (quota). */
export const MAX_PENDING_SUBSCRIBES = 1024
/** Subscriptions Moat keeps track of per session; past it a SUBSCRIBE is refused (quota). */
export const MAX_TRACKED_SUBSCRIPTIONS = 100_000

interface Pending {
  /** Filters forwarded to the broker, in order, with their requested QoS. */
  readonly filters: readonly string[]
  readonly qos: readonly number[]
  /** The client's original order: Moat's refusal code per slot, -1 where the broker answers. Null: none refused. */
  readonly codes: readonly number[] | null
}

export class SubscriptionBook {
  // Made on first use: an idle session holds no Map (memory per idle connection).
  private pending: Map<number, Pending> | null = null
  private revoking: Map<number, string[]> | null = null
  private nextId = 0xffff

  get pendingCount(): number {
    return this.pending === null ? 0 : this.pending.size
  }

  /** True while a revoked filter waits for the broker's UNSUBACK. */
  get revokingAny(): boolean {
    return this.revoking !== null && this.revoking.size > 0
  }

  expect(packetId: number, filters: string[], qos: number[], codes: number[] | null): void {
    (this.pending ?? (this.pending = new Map())).set(packetId, { filters, qos, codes })
  }

  /** The broker's SUBACK: records grants, and returns what the client must receive (merged when Moat refused some filters). */
  onSuback(frame: Buffer, bodyOffset: number, s: SessionState): Buffer {
    const head = readAckWithCodes(frame, bodyOffset, s.version)
    if (head === null) return frame
    const entry = this.pending?.get(head.packetId)
    if (entry === undefined) return frame
    this.pending!.delete(head.packetId)
    const brokerCodes = frame.subarray(head.codesStart)
    for (let i = 0; i < entry.filters.length; i++) {
      const code = i < brokerCodes.length ? brokerCodes[i]! : 0x80
      if (code < 0x80 && s.subscriptions.size < MAX_TRACKED_SUBSCRIPTIONS) s.grant(entry.filters[i]!, entry.qos[i]!)
    }
    if (entry.codes === null) return frame
    const merged: number[] = []
    let next = 0
    for (const code of entry.codes) merged.push(code >= 0 ? code : next < brokerCodes.length ? brokerCodes[next++]! : 0x80)
    return suback(head.packetId, merged, head.properties)
  }

  /** The UNSUBSCRIBE that takes `filters` away at the broker; deliveries only they carry are held back until its UNSUBACK. */
  revoke(filters: string[], s: SessionState): Buffer {
    const revoking = this.revoking ?? (this.revoking = new Map())
    let id = this.nextId
    while (revoking.has(id) || this.pending?.has(id) === true) id = id === 1 ? 0xffff : id - 1
    this.nextId = id === 1 ? 0xffff : id - 1
    revoking.set(id, filters)
    for (const f of filters) s.subscriptions.delete(f)
    return unsubscribe(id, filters, s.version)
  }

  /** True when this UNSUBACK answers Moat's own UNSUBSCRIBE: it must not reach the client. */
  onUnsuback(frame: Buffer, bodyOffset: number): boolean {
    if (this.revoking === null || this.revoking.size === 0 || frame.length < bodyOffset + 2) return false
    return this.revoking.delete(frame.readUInt16BE(bodyOffset))
  }

  /** A delivery on `topic` that only a revoked subscription would carry. */
  isRevokedDelivery(topic: string, s: SessionState): boolean {
    let revoked = false
    if (this.revoking === null) return false
    for (const filters of this.revoking.values()) {
      for (const f of filters) {
        if (topicMatches(unshare(f), topic)) {
          revoked = true
          break
        }
      }
      if (revoked) break
    }
    if (!revoked) return false
    for (const f of s.subscriptions.keys()) if (topicMatches(unshare(f), topic)) return false
    return true
  }
}
