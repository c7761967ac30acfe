/**
 * Interop, real clients: payloads at the broker's cap. Mosquitto here takes payloads up to 64 KiB
 * (message_size_limit 65536); Moat's own maxPacketSize (the harness's MAX_SIZE) is far larger, so
 * the cap the clients meet is the broker's, through Moat as directly. A payload at the cap arrives byte for byte; one
 * byte more is refused by the broker (5.0: PUBACK 0x95 Packet too large; 3.1.1: PUBACK, dropped).
 */
import { createHash } from 'node:crypto'
import { expect, it } from 'vitest'
import { directAndMoat, forStacks, hex, interopSuite } from '../helpers/interop/harness.js'
import { STACKS, type ReceivedMessage } from '../helpers/interop/stacks.js'

const CAP = 65536

/** Binary payload with every byte value (NUL and newline included), as hex. */
function payload(length: number): string {
  const bytes = Buffer.alloc(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + 7) & 0xff
  return bytes.toString('hex')
}

/** A received message with its payload as length + SHA-256 (a failing diff of 128 KiB of hex helps no one). */
function summary(m: ReceivedMessage): Record<string, unknown> {
  const bytes = Buffer.from(m.payload, 'hex')
  return { ...m, payload: { length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } }
}

interopSuite('interop: payload cap', (env) => {
  forStacks(STACKS, [4, 5], (stack, version) => {
    // Mosquitto 2.0.11 refuses a 5.0 QoS 1 PUBLISH over its cap with PUBACK 0x95, a code the spec
    // does not allow in PUBACK: Paho and MQTT.js reject that PUBACK ("Invalid puback reason code")
    // and never complete the publish, directly as through Moat. So they send the payload one byte
    // over at QoS 0 (no ack: the observable is that it is not delivered); mosquitto_pub prints RC:149.
    const overAtQos0 = version === 5 && stack !== 'mosquitto-clients'

    it('delivers a payload at the broker\'s cap byte for byte, and gets the broker\'s refusal one byte over', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const sub = run.start(stack, { version, clientId: run.id('sub'), subscribe: [{ topic: run.topic('cap/#'), qos: 1 }] })
        await sub.started
        const acks: unknown[] = []
        // One publisher per message: mosquitto_pub sends one binary payload (-s) per run.
        for (const [name, data] of [['at', payload(CAP)], ['over', payload(CAP + 1)], ['marker', hex('end')]] as const) {
          const qos = name === 'over' && overAtQos0 ? 0 : 1
          const pub = run.start(stack, { version, clientId: run.id(`pub-${name}`), publish: [{ topic: run.topic(`cap/${name}`), payload: data, qos }] })
          await pub.started
          await pub.end('disconnect')
          acks.push(pub.events.filter((e) => e.event === 'ack' || e.event === 'disconnect'))
        }
        await sub.waitMessages(2, 10_000)
        await sub.end('disconnect')
        return { acks, received: sub.messages().map(summary) }
      })
      const v5 = version === 5 ? { properties: {} } : {}
      const at = summary({ topic: 'T/cap/at', payload: payload(CAP), qos: 1, retain: false, ...v5 })
      const marker = summary({ topic: 'T/cap/marker', payload: hex('end'), qos: 1, retain: false, ...v5 })
      expect(direct).toEqual({
        acks: [
          [{ event: 'ack', type: 'puback', code: 0 }],
          overAtQos0 ? [] : [{ event: 'ack', type: 'puback', code: version === 5 ? 0x95 : 0 }],
          [{ event: 'ack', type: 'puback', code: 0 }],
        ],
        received: [at, marker],
      })
      expect(moat).toEqual(direct)
    })
  })
}, { mosquitto: { config: [`message_size_limit ${CAP}`] } })
