import { generate, parser, type IConnackPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { rewriteConnack } from '../../../src/limits/connack.js'

function parse(buf: Buffer): IConnackPacket {
  const p = parser({ protocolVersion: 5 })
  let out: IConnackPacket | null = null
  p.on('packet', (packet) => { out = packet as IConnackPacket })
  p.on('error', (err) => { throw err })
  p.parse(buf)
  return out!
}

const connack = (properties: IConnackPacket['properties'] = {}): IConnackPacket =>
  parse(generate({ cmd: 'connack', sessionPresent: true, reasonCode: 0, properties }, { protocolVersion: 5 }))

describe('rewriteConnack', () => {
  it('adds Maximum Packet Size, keeping everything the broker said', () => {
    const out = parse(rewriteConnack(connack({ topicAliasMaximum: 10, assignedClientIdentifier: 'x' }), 262_144, null, 60, 60)!)
    expect(out).toMatchObject({ sessionPresent: true, reasonCode: 0, properties: { topicAliasMaximum: 10, assignedClientIdentifier: 'x', maximumPacketSize: 262_144 } })
    expect(out.properties?.serverKeepAlive).toBeUndefined()
    expect(out.properties?.receiveMaximum).toBeUndefined()
  })

  it('lowers the broker\'s values, never raises them', () => {
    const out = parse(rewriteConnack(connack({ maximumPacketSize: 1_000_000, receiveMaximum: 100, serverKeepAlive: 120 }), 262_144, 20, 300, 60)!)
    expect(out.properties).toMatchObject({ maximumPacketSize: 262_144, receiveMaximum: 20, serverKeepAlive: 60 })
    expect(rewriteConnack(connack({ maximumPacketSize: 1000, receiveMaximum: 5, serverKeepAlive: 30 }), 262_144, 20, 300, 60)).toBeNull()
  })

  it('sets Server Keep Alive when Moat lowers the client\'s keepalive', () => {
    const out = parse(rewriteConnack(connack({ maximumPacketSize: 1000 }), 262_144, null, 0, 300)!)
    expect(out.properties?.serverKeepAlive).toBe(300)
  })
})
