/**
 * Many clients at once: 200 concurrent clients each publish and receive their own messages, with
 * every payload arriving intact, directly and through Moat.
 */
import { randomBytes } from 'node:crypto'
import { expect, it } from 'vitest'
import { connectWithInbox, uid } from '../helpers/clients.js'
import { relayTargets } from '../helpers/targets.js'

const CLIENTS = 200

relayTargets('200 concurrent clients', [4], (target, protocolVersion) => {
  it(`connects ${CLIENTS} clients that each publish and receive their own messages`, async () => {
    const run = uid('load')
    const sessions = await Promise.all(Array.from({ length: CLIENTS }, () => connectWithInbox(target().port, { protocolVersion })))
    await Promise.all(sessions.map(({ client }, i) => client.subscribeAsync(`${run}/${i}`, { qos: 1 })))
    const payloads = sessions.map(() => [randomBytes(32), randomBytes(200)])
    await Promise.all(sessions.map(({ client }, i) => Promise.all(payloads[i]!.map((p) => client.publishAsync(`${run}/${i}`, p, { qos: 1 })))))
    const received = await Promise.all(sessions.map(({ inbox }) => inbox.waitFor(2, 15_000)))
    received.forEach((messages, i) => {
      const got = messages.map((m) => m.payload.toString('hex')).sort()
      const sent = payloads[i]!.map((p) => p.toString('hex')).sort()
      expect(got).toEqual(sent)
      expect(messages.every((m) => m.topic === `${run}/${i}`)).toBe(true)
    })
    if (target().moat !== null) expect(target().moat!.sessionCount).toBeGreaterThanOrEqual(CLIENTS)
    await Promise.all(sessions.map(({ client }) => client.endAsync()))
  }, 60_000)
})
