/**
 * Graceful shutdown: stop accepting, let open sessions go on for the grace period, then close them
 * (5.0 clients with DISCONNECT 0x8B, server shutting down).
 */
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

for (const kind of brokerKinds()) {
  describe(`graceful shutdown (${kind})`, () => {
    let broker: TestBroker
    beforeAll(async () => { broker = await startBroker(kind) })
    afterAll(async () => { await broker?.stop() })

    it('refuses new connections, keeps open sessions working during the grace period, then closes them', async () => {
      const moat = await startMoat(broker, { shutdown: { gracePeriodMs: 60_000 } })
      const port = moat.address().port
      const topic = uid('grace')
      const sub = await connect(port)
      const inbox = new Inbox(sub)
      await sub.subscribeAsync(topic, { qos: 1 })
      const versions = brokerVersions(kind).includes(5) ? [4, 5] as const : [4] as const
      const raws = await Promise.all(versions.map((v) => rawSession(port, uid(`raw${v}`), v)))

      const done = moat.shutdown(400)
      // New connections are refused at once.
      await expect(new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1')
        s.once('connect', () => { s.destroy(); resolve('connected') })
        s.once('error', reject)
      })).rejects.toThrow(/ECONNREFUSED/)
      // Open sessions still work during the grace period.
      await sub.publishAsync(topic, 'during grace', { qos: 1 })
      expect(String((await inbox.waitFor(1))[0]!.payload)).toBe('during grace')

      await done
      expect(moat.sessionCount).toBe(0)
      const answers = await Promise.all(raws.map((r) => r.nextPacket()))
      versions.forEach((v, i) => {
        if (v === 5) expect(answers[i]).toMatchObject({ cmd: 'disconnect', reasonCode: 0x8b })
        else expect(answers[i]).toBeNull()
      })
      expect(moat.stats.closedFor('shutdown')).toBe(versions.length + 1)
      sub.end(true)
    })

    it('finishes as soon as every session has ended, long before a 60 s grace period', async () => {
      const moat = await startMoat(broker)
      const client = await connect(moat.address().port)
      const done = moat.shutdown(60_000)
      await client.endAsync()
      await done // (the test's 20 s timeout would fail a shutdown that waited out the grace period)
      expect(moat.sessionCount).toBe(0)
      expect(moat.stats.closedFor('client_disconnect')).toBe(1)
    })
  })
}
