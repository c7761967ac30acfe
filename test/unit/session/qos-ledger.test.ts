import { describe, expect, it } from 'vitest'
import { PacketType } from '../../../src/protocol/packet-type.js'
import { QosLedger } from '../../../src/session/qos-ledger.js'
import { SessionState } from '../../../src/client/session-state.js'
import { TEST_CONN } from '../../helpers/session.js'

function ledger(): { ledger: QosLedger; state: SessionState } {
  const state = new SessionState(1, TEST_CONN)
  return { ledger: new QosLedger(state), state }
}

/** An ack body: packet id, then (5.0) a reason code. */
const ackBody = (packetId: number, reason?: number): Buffer => Buffer.from(reason === undefined ? [packetId >> 8, packetId & 0xff] : [packetId >> 8, packetId & 0xff, reason])

describe('QosLedger, client → broker', () => {
  it('takes a QoS 2 packet id once until the client releases it', () => {
    const { ledger: l } = ledger()
    expect(l.forwardQos2(5)).toBe(true)
    expect(l.forwardQos2(5)).toBe(false) // a duplicate: Moat answers it, the broker must not see it
    expect(l.forwardQos2(6)).toBe(true)
    expect(l.clientPubrel(5)).toBe(false) // forwarded: the broker completes it
    expect(l.forwardQos2(5)).toBe(true)
  })

  it("completes the PUBREL of a publish Moat refused itself, once", () => {
    const { ledger: l } = ledger()
    l.refuseQos2(9)
    expect(l.clientPubrel(9)).toBe(true)
    expect(l.clientPubrel(9)).toBe(false)
  })

  it('a refusing PUBREC from the broker frees the packet id of a forwarded QoS 2 publish; an accepting one does not', () => {
    const { ledger: l } = ledger()
    l.forwardQos2(3)
    l.brokerAck(ackBody(3), 0, 2, PacketType.Pubrec)
    expect(l.forwardQos2(3)).toBe(false)
    l.brokerAck(ackBody(3, 0x00), 0, 3, PacketType.Pubrec)
    expect(l.forwardQos2(3)).toBe(false)
    l.brokerAck(ackBody(3, 0x87), 0, 3, PacketType.Pubrec)
    expect(l.forwardQos2(3)).toBe(true)
  })
})

describe('QosLedger, broker → client', () => {
  it('counts the acks the client owes: one per QoS 1/2 delivery, broker PUBREC and broker PUBREL passed on', () => {
    const { ledger: l, state } = ledger()
    l.delivered(0x00) // QoS 0
    expect(state.acksOwed).toBe(0)
    l.delivered(0x02) // QoS 1
    l.delivered(0x04 | 0x01) // QoS 2, retained
    expect(state.acksOwed).toBe(2)
    l.brokerAck(ackBody(1), 0, 2, PacketType.Puback)
    expect(state.acksOwed).toBe(2)
    l.brokerAck(ackBody(1), 0, 2, PacketType.Pubrec)
    expect(state.acksOwed).toBe(3)
    expect(l.brokerPubrel(Buffer.from([0x62, 0x02, 0, 1]), 2)).toBe(false)
    expect(state.acksOwed).toBe(4)
  })

  it('ends an in-flight publish on PUBACK, PUBCOMP and a refusing PUBREC, not on an accepting PUBREC', () => {
    const { ledger: l, state } = ledger()
    state.inflight = new Set([1, 2, 3, 4])
    expect(l.brokerAck(ackBody(1), 0, 2, PacketType.Puback)).toBe(true)
    expect(l.brokerAck(ackBody(2), 0, 2, PacketType.Pubrec)).toBe(false)
    expect(l.brokerAck(ackBody(2), 0, 2, PacketType.Pubcomp)).toBe(true)
    expect(l.brokerAck(ackBody(3, 0x80), 0, 3, PacketType.Pubrec)).toBe(true)
    expect([...state.inflight]).toEqual([4])
  })

  it('reads the ack where the frame puts it, and ignores one too short to carry a packet id', () => {
    const { ledger: l, state } = ledger()
    state.inflight = new Set([0x0102])
    const frame = Buffer.from([0x40, 0x02, 0x01, 0x02])
    expect(l.brokerAck(frame, 2, 3, PacketType.Puback)).toBe(false)
    expect(state.inflight.size).toBe(1)
    expect(l.brokerAck(frame, 2, 4, PacketType.Puback)).toBe(true)
    expect(state.inflight.size).toBe(0)
  })

  it('without in-flight tracking (no quota) an ack ends nothing', () => {
    const { ledger: l } = ledger()
    expect(l.brokerAck(ackBody(1), 0, 2, PacketType.Puback)).toBe(false)
  })

  it("a held delivery is acknowledged by Moat at its QoS, and a QoS 2 one's PUBREL answered by Moat, not passed on", () => {
    const { ledger: l, state } = ledger()
    expect(l.holdDelivery(0, 0)).toBe(0)
    expect(l.holdDelivery(1, 7)).toBe(PacketType.Puback)
    expect(l.holdDelivery(2, 8)).toBe(PacketType.Pubrec)
    const pubrel = Buffer.from([0x62, 0x02, 0, 8])
    expect(l.brokerPubrel(pubrel, 2)).toBe(true)
    expect(state.acksOwed).toBe(0)
    expect(l.brokerPubrel(pubrel, 2)).toBe(false) // a second one is the client's
    expect(state.acksOwed).toBe(1)
  })
})
