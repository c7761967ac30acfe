/**
 * The size cap holds before anything is buffered: a client that declares a 200 MB packet and sends
 * its body slowly is closed at once, the broker sees nothing of it, and the proxy's memory does not
 * grow with what the client declared or sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'
import { varint } from '../helpers/bytes.js'

const DECLARED = 200 * 1024 * 1024


for (const kind of brokerKinds()) {
  describe(`maxPacketSize in front of ${kind}`, () => {
    let broker: TestBroker
    let moat: Moat

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { limits: { maxPacketSize: 256 * 1024 } })
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    for (const version of ([4, 5] as const).filter((v) => brokerVersions(kind).includes(v))) {
      it(`closes a ${version === 5 ? '5.0' : '3.1.1'} client that declares a 200 MB PUBLISH and trickles its body; memory stays flat`, async () => {
        const id = uid('huge')
        const raw = await rawSession(moat.address().port, id, version)
        global.gc?.()
        const before = process.memoryUsage().arrayBuffers
        const topic = Buffer.from(`${id}/huge`)
        const header = Buffer.from([0x30, ...varint(DECLARED), topic.length >> 8, topic.length & 0xff])
        raw.send(Buffer.concat([header, topic, ...(version === 5 ? [Buffer.from([0])] : [])]))
        // Keep trickling the body, 16 KiB at a time, until Moat closes the connection.
        const chunk = Buffer.alloc(16 * 1024, 0x61)
        let sent = 0
        const trickle = setInterval(() => {
          if (raw.isOpen && sent < 8 * 1024 * 1024) {
            raw.send(chunk)
            sent += chunk.length
          }
        }, 5)
        const answer = await raw.nextPacket()
        await raw.closed
        clearInterval(trickle)
        if (version === 5) expect(answer).toMatchObject({ cmd: 'disconnect', reasonCode: 0x95 })
        else expect(answer).toBeNull()
        // Closed at once: long before the declared body (or even the 8 MiB we were ready to send).
        expect(sent).toBeLessThan(8 * 1024 * 1024)
        const grown = process.memoryUsage().arrayBuffers - before
        expect(grown).toBeLessThan(8 * 1024 * 1024)
        await broker.clientGone(id)
        await expect.poll(() => broker.received(id)).toEqual(['connect'])
        expect(moat.stats.closedFor('packet_too_large')).toBeGreaterThanOrEqual(1)
      })
    }
  })
}
