/**
 * Relay tests run each scenario twice per broker: against the broker DIRECTLY (proving the test
 * itself is right) and THROUGH MOAT (proving Moat is transparent). `relayTargets()` declares the
 * describe blocks and starts one broker and one Moat per broker kind.
 */
import { afterAll, beforeAll, describe, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type BrokerKind, type ProtocolLevel, type TestBroker } from './broker.js'
import { startMoat, type MoatOverrides } from './moat.js'

export interface Target {
  readonly name: 'direct' | 'moat'
  readonly kind: BrokerKind
  /** Where clients connect. */
  readonly port: number
  readonly broker: TestBroker
  /** Null on the direct target. */
  readonly moat: Moat | null
}

export type TargetSuite = (target: () => Target, version: ProtocolLevel) => void

/**
 * Declares `suite` for every broker kind × target × protocol level in `levels` the broker speaks.
 */
export function relayTargets(title: string, levels: readonly ProtocolLevel[], suite: TargetSuite, overrides: MoatOverrides = {}): void {
  const kinds = brokerKinds().filter((kind) => levels.some((l) => brokerVersions(kind).includes(l)))
  if (kinds.length === 0) {
    // Only without Mosquitto, outside CI (brokerKinds() throws under CI=true): the documented skip.
    it.skip(`${title}: needs mosquitto for MQTT ${levels.join(', ')}`, () => {})
    return
  }
  for (const kind of kinds) {
    describe(`${title} (${kind})`, () => {
      let broker: TestBroker
      let moat: Moat
      beforeAll(async () => {
        broker = await startBroker(kind)
        moat = await startMoat(broker, overrides)
      })
      afterAll(async () => {
        await moat?.shutdown(0)
        await broker?.stop()
      })
      for (const name of ['direct', 'moat'] as const) {
        for (const version of levels.filter((l) => brokerVersions(kind).includes(l))) {
          describe(`${name}, MQTT ${version === 5 ? '5.0' : version === 4 ? '3.1.1' : '3.1'}`, () => {
            suite(() => ({
              name,
              kind,
              port: name === 'direct' ? broker.port : moat.address().port,
              broker,
              moat: name === 'direct' ? null : moat,
            }), version)
          })
        }
      }
    })
  }
}
