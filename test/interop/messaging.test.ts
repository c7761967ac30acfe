/**
 * Interop, real clients: CONNACK, QoS 0/1/2 in both directions, retained messages set and cleared,
 * unsubscribe, each with mosquitto_pub/sub, Paho (Python) and MQTT.js, in MQTT 3.1.1 and 5.0,
 * directly against Mosquitto and through Moat. What a client observes through Moat must equal what
 * it observes directly.
 */
import { expect, it } from 'vitest'
import { directAndMoat, forStacks, hex, interopSuite } from '../helpers/interop/harness.js'
import { STACKS, type ClientHandle, type Stack, type Version } from '../helpers/interop/stacks.js'

/** The CONNACK a stack shows for a clean connect with a client id chosen by the client. */
function expectedConnack(stack: Stack, version: Version, assigned: boolean): Record<string, unknown> {
  // mosquitto_pub/sub -d print the CONNACK's return/reason code only.
  if (stack === 'mosquitto-clients') return { event: 'connack', code: 0 }
  if (version === 4) return { event: 'connack', code: 0, sessionPresent: false, properties: null }
  // Mosquitto 2.0.11's 5.0 CONNACK with its default config: nothing else (no Maximum Packet Size).
  return {
    event: 'connack', code: 0, sessionPresent: false,
    properties: { ...(assigned ? { assignedClientIdentifier: '<assigned by the broker>' } : {}), receiveMaximum: 20, topicAliasMaximum: 10 },
  }
}

interopSuite('interop: messaging', (env) => {
  forStacks(STACKS, [4, 5], (stack, version) => {
    it('shows the broker\'s CONNACK: return/reason code, session present, properties', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const named = run.start(stack, { version, clientId: run.id('named'), subscribe: [{ topic: run.topic('x'), qos: 0 }] })
        await named.started
        await named.end('disconnect')
        return named.connack()
      })
      expect(direct).toEqual(expectedConnack(stack, version, false))
      expect(moat).toEqual(direct)
    })

    if (version === 5 && stack !== 'mosquitto-clients') {
      // mosquitto_sub/pub print no CONNACK properties, so the assigned id is seen by Paho and MQTT.js only.
      it('shows the broker\'s CONNACK with an assigned client identifier (empty client id)', async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const anonymous = run.start(stack, { version, subscribe: [{ topic: run.topic('x'), qos: 0 }] })
          await anonymous.started
          await anonymous.end('disconnect')
          return anonymous.connack()
        })
        expect(direct).toEqual(expectedConnack(stack, version, true))
        expect(moat).toEqual(direct)
      })
    }

    for (const qos of [0, 1, 2] as const) {
      it(`publishes and delivers at QoS ${qos}: SUBACK, the publisher's acks, the subscriber's messages`, async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const sub = run.start(stack, { version, clientId: run.id('sub'), subscribe: [{ topic: run.topic('q/#'), qos }] })
          await sub.started
          const messages = ['first', 'second'].map((text) => ({ topic: run.topic('q/a'), payload: hex(text), qos }))
          const pub = run.start(stack, { version, clientId: run.id('pub'), publish: messages })
          await pub.started
          const received = await sub.waitMessages(2)
          await pub.end('disconnect')
          await sub.end('disconnect')
          return { suback: sub.events.filter((e) => e.event === 'suback'), acks: pub.events.filter((e) => e.event === 'ack'), received, exit: await pub.exited }
        })
        const v5 = version === 5 ? { properties: {} } : {}
        expect(direct.suback).toEqual([{ event: 'suback', codes: [qos] }])
        expect(direct.received).toEqual(['first', 'second'].map((text) => ({ topic: 'T/q/a', payload: hex(text), qos, retain: false, ...v5 })))
        // mosquitto_pub -d prints no reason code for PUBREC.
        const pubrec = stack === 'mosquitto-clients' ? null : 0
        const perMessage = qos === 0 ? [] : qos === 1 ? [{ event: 'ack', type: 'puback', code: 0 }] : [{ event: 'ack', type: 'pubrec', code: pubrec }, { event: 'ack', type: 'pubcomp', code: 0 }]
        if (qos === 2 && stack === 'mosquitto-clients') {
          // mosquitto_pub -l may send the second PUBLISH before the first PUBREC: compare as a multiset.
          expect(direct.acks.map((a) => JSON.stringify(a)).sort()).toEqual([...perMessage, ...perMessage].map((a) => JSON.stringify(a)).sort())
          expect(moat.acks.map((a) => JSON.stringify(a)).sort()).toEqual(direct.acks.map((a) => JSON.stringify(a)).sort())
          expect({ ...moat, acks: [] }).toEqual({ ...direct, acks: [] })
        } else {
          expect(direct.acks).toEqual([...perMessage, ...perMessage])
          expect(moat).toEqual(direct)
        }
      })
    }

    it('keeps a retained message for later subscribers, and clears it with an empty retained publish', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const topic = run.topic('r')
        const live = run.start(stack, { version, clientId: run.id('live'), subscribe: [{ topic, qos: 1 }] })
        await live.started
        const set = run.start(stack, { version, clientId: run.id('set'), publish: [{ topic, payload: hex('kept'), qos: 1, retain: true }] })
        await set.started
        await set.end('disconnect')
        const later = run.start(stack, { version, clientId: run.id('later'), subscribe: [{ topic, qos: 1 }] })
        const laterGot = await later.waitMessages(1)
        await later.end('disconnect')
        const clear = run.start(stack, { version, clientId: run.id('clear'), publish: [{ topic, payload: '', qos: 1, retain: true }] })
        await clear.started
        await clear.end('disconnect')
        // After the clear, a new subscriber gets no retained message: a marker published after its
        // SUBACK arrives first.
        const after = run.start(stack, { version, clientId: run.id('after'), subscribe: [{ topic, qos: 1 }, { topic: run.topic('marker'), qos: 1 }] })
        await after.started
        const marker = run.start(stack, { version, clientId: run.id('marker'), publish: [{ topic: run.topic('marker'), payload: hex('m'), qos: 1 }] })
        await marker.started
        await marker.end('disconnect')
        const afterGot = await after.waitMessages(1)
        await after.end('disconnect')
        const liveGot = await live.waitMessages(2)
        await live.end('disconnect')
        return { liveGot, laterGot, afterGot }
      })
      const v5 = version === 5 ? { properties: {} } : {}
      expect(direct).toEqual({
        // A subscriber that was there when it was published gets it with retain 0 (5.0: Retain As Published is off).
        liveGot: [{ topic: 'T/r', payload: hex('kept'), qos: 1, retain: false, ...v5 }, { topic: 'T/r', payload: '', qos: 1, retain: false, ...v5 }],
        laterGot: [{ topic: 'T/r', payload: hex('kept'), qos: 1, retain: true, ...v5 }],
        afterGot: [{ topic: 'T/marker', payload: hex('m'), qos: 1, retain: false, ...v5 }],
      })
      expect(moat).toEqual(direct)
    })

    it('unsubscribes: UNSUBACK reason codes, and no more messages on the topic', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const sub = run.start(stack, {
          version, clientId: run.id('sub'),
          subscribe: [{ topic: run.topic('u'), qos: 1 }, { topic: run.topic('v'), qos: 1 }],
          unsubscribe: [run.topic('u'), run.topic('never-subscribed')],
        })
        await sub.started
        const pub = (topic: string, text: string): ClientHandle => run.start(stack, { version, clientId: run.id(`pub-${text}`), publish: [{ topic, payload: hex(text), qos: 1 }] })
        for (const p of [pub(run.topic('u'), 'dropped'), pub(run.topic('v'), 'kept')]) {
          await p.started
          await p.end('disconnect')
        }
        const got = await sub.waitMessages(1)
        await sub.end('disconnect')
        return { unsuback: sub.events.filter((e) => e.event === 'unsuback'), got: got.map((m) => m.topic), all: sub.messages().length }
      })
      // mosquitto_sub sends one UNSUBSCRIBE per -U and prints no reason codes; 3.1.1 has none.
      const unsuback = stack === 'mosquitto-clients'
        ? [{ event: 'unsuback', codes: null }, { event: 'unsuback', codes: null }]
        : [{ event: 'unsuback', codes: version === 5 ? [0, 17] : null }]
      expect(direct).toEqual({ unsuback, got: ['T/v'], all: 1 })
      expect(moat).toEqual(direct)
    })
  })
})

