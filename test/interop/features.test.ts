/**
 * Interop, real clients: 5.0 topic aliases, user properties and the other PUBLISH properties,
 * subscription identifiers, and shared subscriptions ($share/g/..., 3.1.1 and 5.0), with
 * mosquitto_pub/sub, Paho (Python) and MQTT.js, directly against Mosquitto and through Moat.
 */
import { expect, it } from 'vitest'
import { directAndMoat, forStacks, hex, interopSuite } from '../helpers/interop/harness.js'
import { STACKS, type MessageProperties } from '../helpers/interop/stacks.js'

interopSuite('interop: features', (env) => {
  // Topic aliases, user properties and subscription identifiers exist in 5.0 only.
  forStacks(STACKS, [5], (stack, version) => {
    it('accepts a client→broker topic alias: set with the topic, then used with an empty topic', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        // The subscriber accepts aliases too (Mosquitto 2.0 sends none; through Moat it must not either).
        const sub = run.start(stack, { version, clientId: run.id('sub'), topicAliasMaximum: 10, subscribe: [{ topic: run.topic('#'), qos: 1 }] })
        await sub.started
        const pub = run.start(stack, {
          version, clientId: run.id('pub'),
          publish: [
            { topic: run.topic('alias'), payload: hex('one'), qos: 1, properties: { topicAlias: 1 } },
            { topic: '', payload: hex('two'), qos: 1, properties: { topicAlias: 1 } },
          ],
        })
        await pub.started
        const received = await sub.waitMessages(2)
        await pub.end('disconnect')
        await sub.end('disconnect')
        return { received, acks: pub.events.filter((e) => e.event === 'ack'), pubDisconnected: pub.events.filter((e) => e.event === 'disconnect') }
      })
      expect(direct).toEqual({
        received: ['one', 'two'].map((t) => ({ topic: 'T/alias', payload: hex(t), qos: 1, retain: false, properties: {} })),
        acks: [{ event: 'ack', type: 'puback', code: 0 }, { event: 'ack', type: 'puback', code: 0 }],
        pubDisconnected: [],
      })
      expect(moat).toEqual(direct)
    })

    it('relays user properties, content type, response topic, correlation data, payload format and message expiry', async () => {
      // mosquitto_sub prints user properties as a JSON object (a repeated key would collapse) and
      // correlation data as text: unique keys and text correlation data for it; the repeated key
      // and binary correlation data for Paho and MQTT.js.
      const cli = stack === 'mosquitto-clients'
      const userProperties: [string, string][] = cli
        ? [['site', 'plant-7'], ['ünï', 'välue']]
        : [['site', 'plant-7'], ['a', '1'], ['a', '2'], ['ünï', 'välue']]
      const properties = (responseTopic: string): MessageProperties => ({
        payloadFormatIndicator: 1,
        messageExpiryInterval: 3600,
        contentType: 'application/json; charset=utf-8',
        responseTopic,
        correlationData: cli ? hex('corr-1') : '0001feff',
        userProperties,
      })
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const sub = run.start(stack, { version, clientId: run.id('sub'), subscribe: [{ topic: run.topic('props'), qos: 1 }] })
        await sub.started
        const pub = run.start(stack, { version, clientId: run.id('pub'), publish: [{ topic: run.topic('props'), payload: hex('{"t":21.5}'), qos: 1, properties: properties(run.topic('reply')) }] })
        await pub.started
        const received = await sub.waitMessages(1)
        await pub.end('disconnect')
        await sub.end('disconnect')
        return received
      })
      expect(direct).toEqual([{ topic: 'T/props', payload: hex('{"t":21.5}'), qos: 1, retain: false, properties: properties('T/reply') }])
      expect(moat).toEqual(direct)
    })

    if (stack !== 'mosquitto-clients') {
      // mosquitto_sub has no No Local option, and mosquitto_pub no subscription: Paho and MQTT.js only.
      it('honours No Local: a client does not get its own messages back', async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const self = run.start(stack, { version, clientId: run.id('self'), subscribe: [{ topic: run.topic('nl'), qos: 1, noLocal: true }], publish: [{ topic: run.topic('nl'), payload: hex('own'), qos: 1 }] })
          await self.started
          const other = run.start(stack, { version, clientId: run.id('other'), publish: [{ topic: run.topic('nl'), payload: hex('other'), qos: 1 }] })
          await other.started
          await other.end('disconnect')
          await self.waitMessages(1)
          await self.end('disconnect')
          return self.messages()
        })
        expect(direct).toEqual([{ topic: 'T/nl', payload: hex('other'), qos: 1, retain: false, properties: {} }])
        expect(moat).toEqual(direct)
      })
    }

    it('delivers subscription identifiers with the messages that matched', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const sub = run.start(stack, { version, clientId: run.id('sub'), subscriptionIdentifier: 42, subscribe: [{ topic: run.topic('sid/#'), qos: 1 }] })
        await sub.started
        const pub = run.start(stack, { version, clientId: run.id('pub'), publish: [{ topic: run.topic('sid/a'), payload: hex('x'), qos: 1 }] })
        await pub.started
        const received = await sub.waitMessages(1)
        await pub.end('disconnect')
        await sub.end('disconnect')
        return received
      })
      expect(direct).toEqual([{ topic: 'T/sid/a', payload: hex('x'), qos: 1, retain: false, properties: { subscriptionIdentifiers: [42] } }])
      expect(moat).toEqual(direct)
    })
  })

  forStacks(STACKS, [4, 5], (stack, version) => {
    it('shares a $share/g/... subscription: each message to one member of the group', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const filter = `$share/g/${run.topic('shared/#')}`
        const a = run.start(stack, { version, clientId: run.id('a'), subscribe: [{ topic: filter, qos: 1 }] })
        await a.started
        const b = run.start(stack, { version, clientId: run.id('b'), subscribe: [{ topic: filter, qos: 1 }] })
        await b.started
        const texts = ['m1', 'm2', 'm3', 'm4']
        const pub = run.start(stack, { version, clientId: run.id('pub'), publish: texts.map((t) => ({ topic: run.topic('shared/x'), payload: hex(t), qos: 1 as const })) })
        await pub.started
        // Both members' messages counted: poll (the handles' waits each watch one client).
        for (const deadline = Date.now() + 5000; a.messages().length + b.messages().length < texts.length;) {
          if (Date.now() > deadline) throw new Error(`shared: ${a.messages().length} + ${b.messages().length} of ${texts.length} messages`)
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
        await pub.end('disconnect')
        await a.end('disconnect')
        await b.end('disconnect')
        const text = (m: { payload: string }): string => Buffer.from(m.payload, 'hex').toString()
        return {
          subacks: [a, b].map((c) => c.events.filter((e) => e.event === 'suback')),
          a: a.messages().map(text),
          b: b.messages().map(text),
          topics: [...a.messages(), ...b.messages()].map((m) => m.topic),
        }
      })
      expect(direct.subacks).toEqual([[{ event: 'suback', codes: [1] }], [{ event: 'suback', codes: [1] }]])
      expect([...direct.a, ...direct.b].sort()).toEqual(['m1', 'm2', 'm3', 'm4'])
      expect(direct.topics).toEqual(['T/shared/x', 'T/shared/x', 'T/shared/x', 'T/shared/x'])
      // Mosquitto hands a group's messages round, in the order its members subscribed.
      expect(moat).toEqual(direct)
    })
  })
})
