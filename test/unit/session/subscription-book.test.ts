import { describe, expect, it } from 'vitest'
import { suback } from '../../../src/protocol/acks.js'
import { plainConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'
import { SubscriptionBook } from '../../../src/session/subscription-book.js'

function state(): SessionState {
  const s = new SessionState(1, plainConnInfo('test', '10.0.0.1', 1234))
  s.version = 4
  return s
}

/** A 3.1.1 SUBACK frame and its body offset (fixed header of two bytes). */
function brokerSuback(packetId: number, codes: number[]): [Buffer, number] {
  return [suback(packetId, codes, null), 2]
}

describe('SubscriptionBook and SessionState.subscriptions (made on first use)', () => {
  it('a new session shares one empty subscriptions map that refuses to hold anything', () => {
    const a = state()
    const b = state()
    expect(a.subscriptions.size).toBe(0)
    expect(a.subscriptions).toBe(b.subscriptions)
    expect(() => a.subscriptions.set('x', 1)).toThrow(/grant/)
    expect(b.subscriptions.size).toBe(0)
    // Deleting from it is harmless (UNSUBSCRIBE of a filter never granted).
    expect(a.subscriptions.delete('x')).toBe(false)
  })

  it('records the grants of a SUBACK in the session\'s own map, and merges Moat\'s refusals back', () => {
    const a = state()
    const other = state()
    const book = new SubscriptionBook()
    expect(book.pendingCount).toBe(0)
    book.expect(7, ['a/+', 'b/#'], [1, 0], [-1, 0x80, -1])
    expect(book.pendingCount).toBe(1)
    const [frame, offset] = brokerSuback(7, [1, 0x80])
    const toClient = book.onSuback(frame, offset, a)
    expect([...toClient]).toEqual([...suback(7, [1, 0x80, 0x80], null)])
    expect([...a.subscriptions]).toEqual([['a/+', 1]])
    expect(other.subscriptions.size).toBe(0)
    expect(book.pendingCount).toBe(0)
    // A SUBACK nobody waits for is passed on untouched.
    const [stray] = brokerSuback(9, [0])
    expect(book.onSuback(stray, 2, a)).toBe(stray)
  })

  it('revokes: an UNSUBSCRIBE for the broker, deliveries only the revoked filter carries held back until the UNSUBACK', () => {
    const s = state()
    const book = new SubscriptionBook()
    expect(book.revokingAny).toBe(false)
    expect(book.isRevokedDelivery('a/1', s)).toBe(false)
    expect(book.onUnsuback(Buffer.from([0xb0, 0x02, 0xff, 0xff]), 2)).toBe(false)
    s.grant('a/+', 1)
    s.grant('a/#', 0)
    const unsubscribe = book.revoke(['a/+'], s)
    expect(unsubscribe[0]).toBe(0xa2)
    expect(unsubscribe.readUInt16BE(2)).toBe(0xffff)
    expect(book.revokingAny).toBe(true)
    expect([...s.subscriptions.keys()]).toEqual(['a/#'])
    // Still carried by a/#: not held back.
    expect(book.isRevokedDelivery('a/1', s)).toBe(false)
    book.revoke(['a/#'], s)
    expect(book.isRevokedDelivery('a/1', s)).toBe(true)
    expect(book.onUnsuback(Buffer.from([0xb0, 0x02, 0xff, 0xff]), 2)).toBe(true)
    expect(book.onUnsuback(Buffer.from([0xb0, 0x02, 0xff, 0xfe]), 2)).toBe(true)
    expect(book.revokingAny).toBe(false)
    // The client's own UNSUBACK (an id Moat never used) goes to the client.
    expect(book.onUnsuback(Buffer.from([0xb0, 0x02, 0x00, 0x01]), 2)).toBe(false)
  })
})
