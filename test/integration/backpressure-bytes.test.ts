/**
 * A subscriber that stops reading while the broker keeps delivering still gets every byte, in
 * order, over TCP and over TLS. Its socket is backed up, so the runs Moat forwards from the shared
 * read buffer are written as copies (session/run-writer.ts); the suite runs with
 * MOAT_POISON_LENT_READS=1, so a write that kept a view of the read buffer instead of a copy would
 * deliver poison instead of the payload.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { configWith, listener, listenerTls, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'

const MESSAGES = 2_400 // about 20 MiB: more than the kernel buffers of both ends hold

/** Message `n`: 4.5 to 12 KiB, bytes that depend on n. */
function payload(n: number): Buffer {
  const length = 4_600 + ((n * 7_919) % 7_700)
  const out = Buffer.alloc(length)
  let block = createHash('sha256').update(String(n)).digest()
  for (let at = 0; at < length; at += block.length) {
    block.copy(out, at)
    block = createHash('sha256').update(block).digest()
  }
  return out
}

let certs: TestCerts
beforeAll(() => {
  certs = makeTestCerts([])
})
afterAll(() => certs.cleanup())

// Mosquitto only: the embedded aedes ends a subscriber that stays this far behind (its session was
// gone after 586 of 2,400 messages), a choice of that broker, not the path under test.
const kinds = brokerKinds().filter((k) => k === 'mosquitto')
// Only without Mosquitto, outside CI (brokerKinds() throws under CI=true): the documented skip.
if (kinds.length === 0) it.skip('every byte to a subscriber that stopped reading: needs mosquitto', () => {})
for (const kind of kinds) {
  describe(`a subscriber that stops reading gets every byte once it reads again (${kind})`, () => {
    let broker: TestBroker
    let m: LoggedMoat
    beforeAll(async () => {
      broker = await startBroker(kind)
      m = await startMoatWith(configWith(broker, [
        listener('plain', 'mqtt'),
        listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key) }),
      ]))
    })
    afterAll(async () => {
      await m?.moat.shutdown(0)
      await broker?.stop()
    })

    for (const transport of ['tcp', 'tls'] as const) {
      it(`over ${transport}`, async () => {
        const topic = uid(`slow-${transport}`)
        const subscriber: MqttClient = transport === 'tcp'
          ? await connect(m.moat.address('plain').port, { clientId: uid('sub') })
          : await connect(m.moat.address('secure').port, { clientId: uid('sub'), protocol: 'mqtts', ca: readFileSync(certs.ca) })
        const inbox = new Inbox(subscriber)
        await subscriber.subscribeAsync(topic, { qos: 0 })
        subscriber.stream.pause()

        const publisher = await connect(broker.port) // straight to the broker
        for (let n = 0; n < MESSAGES; n++) publisher.publish(topic, payload(n), { qos: 0 })
        await publisher.endAsync() // after everything is written to the broker
        // Moat's write buffer for the subscriber filled up: it stopped reading the broker.
        const session = (): ReturnType<LoggedMoat['moat']['sessionInfo']>[number] | undefined => m.moat.sessionInfo().find((s) => s.clientId === subscriber.options.clientId)
        await expect.poll(() => session()?.brokerPaused, { timeout: 10_000 }).toBe(true)

        subscriber.stream.resume()
        const got = await inbox.waitFor(MESSAGES, 30_000)
        expect(got.map((g) => g.topic)).toEqual(Array.from({ length: MESSAGES }, () => topic))
        const wrong = got.map((g, n) => (g.payload.equals(payload(n)) ? -1 : n)).filter((n) => n >= 0)
        expect(wrong).toEqual([])
        await subscriber.endAsync()
      }, 60_000)
    }
  })
}
