/**
 * Interop, real clients: wills (published after an unclean end, not after a normal DISCONNECT),
 * persistent sessions resumed with queued messages, keepalive (a ping exchange completes; a silent
 * client is dropped by the broker and its will published). mosquitto_pub/sub, Paho (Python) and
 * MQTT.js, MQTT 3.1.1 and 5.0, directly against Mosquitto and through Moat; an observer connected
 * to the broker directly sees what the broker published.
 */
import { expect, it } from 'vitest'
import { directAndMoat, forStacks, hex, interopSuite } from '../helpers/interop/harness.js'
import { STACKS, type OutMessage, type Version } from '../helpers/interop/stacks.js'

function willFor(topic: string, version: Version): OutMessage {
  return {
    topic, payload: hex('gone'), qos: 1, retain: false,
    ...(version === 5 ? { properties: { contentType: 'text/plain', userProperties: [['reason', 'test']] as [string, string][] } } : {}),
  }
}

/** The observer (MQTT.js 5.0) sees user properties and content type; 3.1.1 wills carry none. */
function expectedWill(version: Version): Record<string, unknown> {
  return {
    topic: 'T/will', payload: hex('gone'), qos: 1, retain: false,
    properties: version === 5 ? { contentType: 'text/plain', userProperties: [['reason', 'test']] } : {},
  }
}

interopSuite('interop: sessions', (env) => {
  forStacks(STACKS, [4, 5], (stack, version) => {
    // mosquitto-clients: the will holder is mosquitto_pub -l (connected until its stdin closes).
    it('publishes the will when the client ends without DISCONNECT', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const observer = await run.observer([run.topic('will')])
        const holder = run.start(stack, { version, clientId: run.id('holder'), will: willFor(run.topic('will'), version) })
        await holder.started
        await holder.end('drop')
        const will = await observer.waitTopic(run.topic('will'))
        return { will, brokerSaw: await run.brokerSawGone(run.id('holder')) }
      })
      expect(direct).toEqual({ will: expectedWill(version), brokerSaw: 'closed its connection' })
      expect(moat).toEqual(direct)
    })

    // A clean 5.0 exit of mosquitto_pub and Paho sends the short DISCONNECT (e0 00: no reason code).
    it('does not publish the will after a normal DISCONNECT', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const observer = await run.observer([run.topic('will'), run.topic('marker')])
        const holder = run.start(stack, { version, clientId: run.id('holder'), will: willFor(run.topic('will'), version) })
        await holder.started
        await holder.end('disconnect')
        const brokerSaw = await run.brokerSawGone(run.id('holder'))
        await observer.barrier(run.topic('marker'))
        return { observed: observer.messages.map((m) => m.topic), brokerSaw, exit: (await holder.exited).code, serverDisconnect: holder.events.filter((e) => e.event === 'disconnect') }
      })
      expect(direct).toEqual({ observed: ['T/marker'], brokerSaw: 'disconnected', exit: stack === 'mqtt.js' ? null : 0, serverDisconnect: [] })
      expect(moat).toEqual(direct)
    })

    it('resumes a persistent session: session present, and the messages queued while away delivered', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const persistent = { version, clientId: run.id('durable'), clean: false, ...(version === 5 ? { sessionExpiry: 300 } : {}), subscribe: [{ topic: run.topic('p'), qos: 1 as const }] }
        const first = run.start(stack, persistent)
        await first.started
        await first.end('disconnect')
        await run.brokerSawGone(run.id('durable'))
        const pub = run.start(stack, { version, clientId: run.id('pub'), publish: ['queued 1', 'queued 2'].map((t) => ({ topic: run.topic('p'), payload: hex(t), qos: 1 as const })) })
        await pub.started
        await pub.end('disconnect')
        // mosquitto_sub needs a -t to run: every stack subscribes again on return (the broker
        // delivers the queued messages either way).
        const back = run.start(stack, persistent)
        const queued = await back.waitMessages(2)
        await back.started
        await back.end('disconnect')
        return { firstConnack: first.connack(), backConnack: back.connack(), queued }
      })
      // mosquitto_sub -d prints no session-present flag.
      const present = (p: boolean): Record<string, unknown> => (stack === 'mosquitto-clients' ? {} : { sessionPresent: p })
      expect(direct).toMatchObject({
        firstConnack: { event: 'connack', code: 0, ...present(false) },
        backConnack: { event: 'connack', code: 0, ...present(true) },
        queued: ['queued 1', 'queued 2'].map((t) => ({ topic: 'T/p', payload: hex(t), qos: 1, retain: false, ...(version === 5 ? { properties: {} } : {}) })),
      })
      expect(moat).toEqual(direct)
    })

    if (version === 5) {
      it('drops a queued message whose expiry passed while the session was away, delivers the rest', async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const persistent = { version, clientId: run.id('durable'), clean: false, sessionExpiry: 300, subscribe: [{ topic: run.topic('e/#'), qos: 1 as const }] }
          const first = run.start(stack, persistent)
          await first.started
          await first.end('disconnect')
          await run.brokerSawGone(run.id('durable'))
          for (const [name, expiry] of [['short', 1], ['long', 3600]] as const) {
            const pub = run.start(stack, { version, clientId: run.id(`pub-${name}`), publish: [{ topic: run.topic(`e/${name}`), payload: hex(name), qos: 1, properties: { messageExpiryInterval: expiry } }] })
            await pub.started
            await pub.end('disconnect')
          }
          await new Promise((resolve) => setTimeout(resolve, 2100)) // past the short one's 1 s
          const back = run.start(stack, persistent)
          await back.waitMessages(1)
          await back.started
          // A barrier: anything else queued would have come before a message published now.
          const marker = run.start(stack, { version, clientId: run.id('marker'), publish: [{ topic: run.topic('e/marker'), payload: hex('m'), qos: 1 }] })
          await marker.started
          await marker.end('disconnect')
          await back.waitMessages(2)
          await back.end('disconnect')
          return back.messages()
        })
        expect(direct).toEqual([
          // The broker lowers the remaining expiry by the time waited (normalised to 10 s steps).
          { topic: 'T/e/long', payload: hex('long'), qos: 1, retain: false, properties: { messageExpiryInterval: 3600 } },
          { topic: 'T/e/marker', payload: hex('m'), qos: 1, retain: false, properties: {} },
        ])
        expect(moat).toEqual(direct)
      })
    }

    if (stack !== 'mosquitto-clients') {
      // A taken-over mosquitto_sub connects again at once (libmosquitto reconnects), and the two
      // would take the session from each other in turn: Paho and MQTT.js only.
      // Mosquitto 2.0.11 closes the old connection without a DISCONNECT (not even 0x8E in 5.0).
      it('closes the old connection when a second one takes its client id over, as the broker does', async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const spec = { version, clientId: run.id('twice'), subscribe: [{ topic: run.topic('t'), qos: 1 as const }] }
          const first = run.start(stack, spec)
          await first.started
          const second = run.start(stack, spec)
          await second.started
          await first.waitEvent((e) => e.event === 'closed')
          await second.end('disconnect')
          return { first: first.events.filter((e) => e.event === 'disconnect'), secondConnack: second.connack()?.code, secondPresent: second.connack()?.sessionPresent }
        })
        expect(direct).toEqual({ first: [], secondConnack: 0, secondPresent: false })
        expect(moat).toEqual(direct)
      })
    }

    // mosquitto_sub accepts a keepalive of 5 s at least; Paho and MQTT.js 1 s.
    const keepalive = stack === 'mosquitto-clients' ? 5 : 1

    it('completes a keepalive ping exchange and stays connected', async () => {
      const { direct, moat } = await directAndMoat(env(), async (run) => {
        const client = run.start(stack, { version, clientId: run.id('pinger'), keepalive, subscribe: [{ topic: run.topic('k'), qos: 0 }] })
        await client.started
        await client.waitEvent((e) => e.event === 'pingresp', keepalive * 2000 + 3000)
        const before = client.events.filter((e) => e.event === 'closed' || e.event === 'disconnect')
        await client.end('disconnect')
        return { pingreq: client.events.some((e) => e.event === 'pingreq'), pingresp: true, closedBeforeEnd: before, brokerSaw: await run.brokerSawGone(run.id('pinger')) }
      }, { concurrent: true })
      expect(direct).toEqual({ pingreq: true, pingresp: true, closedBeforeEnd: [], brokerSaw: 'disconnected' })
      expect(moat).toEqual(direct)
    }, 30_000)

    if (stack !== 'mqtt.js') {
      // MQTT.js runs inside the test process and cannot be made silent (SIGSTOP) without stopping the test.
      it('drops a silent client after 1.5 × keepalive and publishes its will', async () => {
        const { direct, moat } = await directAndMoat(env(), async (run) => {
          const observer = await run.observer([run.topic('will')])
          const client = run.start(stack, { version, clientId: run.id('silent'), keepalive, will: willFor(run.topic('will'), version), subscribe: [{ topic: run.topic('k'), qos: 0 }] })
          await client.started
          client.freeze()
          const will = await observer.waitTopic(run.topic('will'), keepalive * 1500 + 8000)
          const brokerSaw = await run.brokerSawGone(run.id('silent'))
          // Thawed, the client reads what its connection received meanwhile (a DISCONNECT?), then the
          // close (mosquitto_sub then connects again: its second CONNACK ends the wait as well).
          client.thaw()
          await client.waitEvent((e) => e.event === 'closed' || client.events.filter((x) => x.event === 'connack').length > 1, 10_000)
          client.kill()
          return { will, brokerSaw, serverDisconnect: client.events.filter((e) => e.event === 'disconnect') }
        }, { concurrent: true })
        expect(direct).toEqual({ will: expectedWill(version), brokerSaw: 'has exceeded timeout', serverDisconnect: [] })
        expect(moat).toEqual(direct)
      }, 30_000)
    }
  })
})
