import { generate, type IConnackPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { rewriteConnack } from '../../../src/limits/connack.js'
import { PacketDecoder } from '../../../src/protocol/decode.js'
import { mosquittoConnack } from '../protocol/fixtures/client-bytes.js'

const decoder = new PacketDecoder(5)
function parse(buf: Buffer): IConnackPacket {
  const packet = decoder.decode(buf)
  if (packet === null) throw new Error(decoder.lastError)
  return packet as IConnackPacket
}

/** A rewrite of `frame` (variable header at offset 2: the CONNACKs here are short). */
function rewrite(frame: Buffer, maxPacketSize: number, maxInflight: number | null, requested: number, keepalive: number): Buffer | null {
  return rewriteConnack(frame, 2, parse(frame), maxPacketSize, maxInflight, requested, keepalive)
}

const encoded = (properties: IConnackPacket['properties'] = {}): Buffer =>
  generate({ cmd: 'connack', sessionPresent: true, reasonCode: 0, properties }, { protocolVersion: 5 })

describe('rewriteConnack', () => {
  it('adds Maximum Packet Size at the end of the broker\'s own bytes, which stay as they were', () => {
    const broker = Buffer.from(mosquittoConnack.assignedId, 'hex')
    const out = rewrite(broker, 262_144, null, 60, 60)!
    // Same type byte, flags, code and properties in the same order; the new one appended; lengths grown by 5.
    expect(out[0]).toBe(0x20)
    expect(out[1]).toBe(broker[1]! + 5)
    expect(out[4]).toBe(broker[4]! + 5)
    expect(out.subarray(5, 5 + broker.length - 5)).toEqual(broker.subarray(5))
    expect(out.subarray(-5)).toEqual(Buffer.from([0x27, 0x00, 0x04, 0x00, 0x00]))
    expect(parse(out)).toMatchObject({ reasonCode: 0, properties: { topicAliasMaximum: 10, receiveMaximum: 20, maximumPacketSize: 262_144, assignedClientIdentifier: parse(broker).properties!.assignedClientIdentifier } })
  })

  it('adds nothing when the cap is not below what the broker announced, or is the protocol maximum', () => {
    const broker = Buffer.from(mosquittoConnack.plain, 'hex')
    expect(rewrite(broker, 268_435_455, null, 60, 60)).toBeNull()
    expect(rewrite(broker, 268_435_460, null, 60, 60)).toBeNull()
    expect(rewrite(encoded({ maximumPacketSize: 1000 }), 262_144, null, 60, 60)).toBeNull()
  })

  it('lowers the broker\'s values in place, never raises them', () => {
    const broker = encoded({ maximumPacketSize: 1_000_000, receiveMaximum: 100, serverKeepAlive: 120 })
    const out = rewrite(broker, 262_144, 20, 300, 60)!
    expect(out.length).toBe(broker.length)
    expect(parse(out).properties).toMatchObject({ maximumPacketSize: 262_144, receiveMaximum: 20, serverKeepAlive: 60 })
    expect(rewrite(encoded({ maximumPacketSize: 1000, receiveMaximum: 5, serverKeepAlive: 30 }), 262_144, 20, 300, 60)).toBeNull()
  })

  it('sets Server Keep Alive when Moat lowers the client\'s keepalive', () => {
    const out = rewrite(encoded({ maximumPacketSize: 1000 }), 262_144, null, 0, 300)!
    expect(parse(out).properties?.serverKeepAlive).toBe(300)
  })
})
