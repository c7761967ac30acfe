/** Admission decisions (session/admission.ts), through a Session over fake sockets. */
import { describe, expect, it, vi } from 'vitest'
import type { CheckFactory } from '../../../src/checks/check.js'
import { disconnect, FORWARD, type Verdict } from '../../../src/checks/verdict.js'
import type { Fleet, FleetRefusal, FleetVerdict } from '../../../src/fleet/fleet.js'
import { PolicyStore } from '../../../src/policy/store.js'
import { ConnectionLimiter } from '../../../src/limits/connections.js'
import { OverloadMonitor } from '../../../src/limits/overload.js'
import { ReasonCode } from '../../../src/protocol/reason.js'
import { connackBytes, connectBytes, FakeSocket, sessionConfig, sessionHarness, settle } from '../../helpers/session.js'

/** A fleet whose answers the test sets; it records the slots given back. */
class FakeFleet {
  ban: FleetRefusal | null = null
  needs = true
  released: number[] = []
  private answer: ((v: FleetVerdict) => void) | null = null
  atConnect(): FleetRefusal | null {
    return this.ban
  }
  needsAdmission(): boolean {
    return this.needs
  }
  admit(): Promise<FleetVerdict> {
    return new Promise((resolve) => { this.answer = resolve })
  }
  answerWith(verdict: FleetVerdict): void {
    this.answer!(verdict)
  }
  release(_address: string, _username: string | null, slots: number): void {
    this.released.push(slots)
  }
}

/** A check whose CONNECT verdict comes when the test says. */
function pendingConnect(): { factory: CheckFactory; decide: (v: Verdict) => void } {
  let decide: (v: Verdict) => void = () => {}
  const factory: CheckFactory = {
    name: 'backend',
    create: () => () => ({ name: 'backend', onConnect: () => new Promise<Verdict>((resolve) => { decide = resolve }) }),
  }
  return { factory, decide: (v) => decide(v) }
}

describe('Admission', () => {
  it('answers a connection refused at accept time in its CONNECT\'s version, never dialling', async () => {
    for (const [version, answer] of [[4, connackBytes(4, 3)], [5, connackBytes(5, ReasonCode.QuotaExceeded)]] as const) {
      const h = sessionHarness(sessionConfig(), { refusal: 'too_many_connections' })
      h.client.send(connectBytes(version))
      await settle()
      expect(h.client.received()).toEqual(answer)
      expect(h.dials).toHaveLength(0)
      expect(h.session.isClosed).toBe(true)
      expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'too_many_connections' })
    }
  })

  it('gives a connection refused at accept time a second to send its CONNECT, not the full timeout', async () => {
    const h = sessionHarness(sessionConfig({ limits: { connectTimeout: '10s' } }), { refusal: 'connection_rate' })
    expect(h.session.admission.connectWaitMs).toBe(1000)
    expect(sessionHarness(sessionConfig({ limits: { connectTimeout: '10s' } })).session.admission.connectWaitMs).toBe(10_000)
    expect(sessionHarness(sessionConfig({ limits: { connectTimeout: '500ms' } }), { refusal: 'connection_rate' }).session.admission.connectWaitMs).toBe(500)
  })

  it('answers an unsupported protocol level with CONNACK 0x01', async () => {
    const h = sessionHarness()
    const frame = connectBytes()
    frame[8] = 9 // the protocol level byte of MQTT 3.1.1's CONNECT
    h.client.send(frame)
    await settle()
    expect(h.client.received()).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x01]))
    expect(h.dials).toHaveLength(0)
  })

  it('refuses a banned client before any check is asked', async () => {
    const fleet = new FakeFleet()
    fleet.ban = { why: 'banned', reason: ReasonCode.Banned }
    const asked: string[] = []
    const spy: CheckFactory = { name: 'spy', create: () => () => ({ name: 'spy', onConnect: () => { asked.push('connect'); return FORWARD } }) }
    const h = sessionHarness(sessionConfig(), { factories: [spy], context: { fleet: fleet as unknown as Fleet } })
    h.client.send(connectBytes(5))
    await settle()
    expect(asked).toEqual([])
    expect(h.client.received()).toEqual(connackBytes(5, ReasonCode.Banned))
    expect(h.lines.find((l) => l.event === 'connect_refused')).toMatchObject({ reason: 'banned', code: ReasonCode.Banned })
    expect(h.lines.find((l) => l.event === 'connect_refused')).not.toHaveProperty('check')
  })

  it('dials only once a waiting check admits the client; its refusal names the check and never dials', async () => {
    const admitted = pendingConnect()
    const h = sessionHarness(sessionConfig(), { factories: [admitted.factory] })
    h.client.send(connectBytes())
    await settle()
    expect(h.dials).toHaveLength(0)
    expect(h.session.info().clientPaused).toBe(true)
    admitted.decide(FORWARD)
    await settle()
    expect(h.upstream().received()).toEqual(connectBytes())

    const refused = pendingConnect()
    const r = sessionHarness(sessionConfig(), { factories: [refused.factory] })
    r.client.send(connectBytes())
    await settle()
    refused.decide(disconnect(ReasonCode.NotAuthorized, 'not_authorized'))
    await settle()
    expect(r.dials).toHaveLength(0)
    expect(r.client.received()).toEqual(connackBytes(4, 5))
    expect(r.lines.find((l) => l.event === 'connect_refused')).toMatchObject({ reason: 'not_authorized', code: 5, check: 'backend' })
  })

  it('holds a slot per user name: the next CONNECT of that user is refused while the first session lasts', async () => {
    const config = sessionConfig({ limits: { connections: { perUsername: 1 } } })
    const policy = new PolicyStore(config)
    const limiter = new ConnectionLimiter(policy, new OverloadMonitor(policy))
    const h = sessionHarness(config, { factories: [], context: { limiter } }) // no auth: the user name stands
    h.client.send(connectBytes(4, { username: 'alice' }))
    await settle()
    expect(h.session.admission.userAdmitted).toBe(true)
    const second = h.another()
    second.client.send(connectBytes(4, { username: 'alice' }))
    await settle()
    expect(second.session.admission.userAdmitted).toBe(false)
    expect(second.client.received()).toEqual(connackBytes(4, 3))
    expect(h.dials).toHaveLength(1)
  })

  it('waits for the fleet-wide count; the slots it grants are held by the session', async () => {
    const fleet = new FakeFleet()
    const h = sessionHarness(sessionConfig(), { context: { fleet: fleet as unknown as Fleet } })
    h.client.send(connectBytes())
    await settle()
    expect(h.dials).toHaveLength(0)
    fleet.answerWith({ refusal: null, slots: 3 })
    await settle()
    expect(h.session.admission.fleetSlots).toBe(3)
    expect(h.dials).toHaveLength(1)
  })

  it('gives back the fleet slots granted to a session that ended while it waited', async () => {
    const fleet = new FakeFleet()
    const h = sessionHarness(sessionConfig(), { context: { fleet: fleet as unknown as Fleet } })
    h.client.send(connectBytes())
    await settle()
    h.session.shutdown()
    fleet.answerWith({ refusal: null, slots: 3 })
    await settle()
    expect(fleet.released).toEqual([3])
    expect(h.session.admission.fleetSlots).toBe(0)
    expect(h.dials).toHaveLength(0)
  })

  it('answers a broker it cannot reach with CONNACK server unavailable, counted', async () => {
    const h = sessionHarness(sessionConfig(), {
      context: {
        dial: () => {
          const socket = new FakeSocket()
          process.nextTick(() => socket.destroy(new Error('connect ECONNREFUSED')))
          return socket
        },
      },
    })
    h.client.send(connectBytes())
    await settle()
    expect(h.client.received()).toEqual(connackBytes(4, 3))
    expect(h.ctx.stats.upstreamConnectFailures).toBe(1)
    expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'upstream_unavailable' })
  })

  it('counts the dial once the broker connection is up', async () => {
    const h = sessionHarness(sessionConfig(), { connectOnDial: false })
    h.client.send(connectBytes())
    await settle()
    expect(h.ctx.stats.upstreamConnects).toBe(0)
    h.upstream().emit('connect')
    expect(h.ctx.stats.upstreamConnects).toBe(1)
    expect(h.ctx.stats.upstreamConnectSeconds).toBeGreaterThan(0)
  })
})

describe('Admission: a broker that does not answer in upstream.connectTimeout', () => {
  const slowBroker = { upstream: { host: '127.0.0.1', port: 1, connectTimeout: '40ms' } }

  it('is dialled again with a fresh connection, and the second dial that connects opens the session', async () => {
    // The first dial never answers; the second connects at once, so no later timer can fire.
    const dials: FakeSocket[] = []
    const dial = (): FakeSocket => {
      const socket = new FakeSocket()
      dials.push(socket)
      if (dials.length > 1) process.nextTick(() => socket.emit('connect'))
      return socket
    }
    const h = sessionHarness(sessionConfig(slowBroker), { context: { dial } })
    h.client.send(connectBytes(4))
    await settle()
    expect(dials).toHaveLength(1)
    await vi.waitFor(() => expect(dials[1]?.received()).toEqual(connectBytes(4)), { timeout: 2000 })
    expect(dials).toHaveLength(2)
    // The first connection is dropped; it is never written to.
    expect(dials[0]!.destroyed).toBe(true)
    expect(dials[0]!.received()).toHaveLength(0)
    expect(h.client.received()).toHaveLength(0)
    dials[1]!.send(connackBytes(4, 0))
    await settle()
    expect(h.client.received()).toEqual(connackBytes(4, 0))
    expect(h.session.isClosed).toBe(false)
    expect(h.ctx.stats.upstreamConnectFailures).toBe(1)
    expect(h.lines.filter((l) => l.event === 'upstream_dial_retry')).toHaveLength(1)
  })

  it('answers "server unavailable" after the third attempt (3.1.1 CONNACK 3, 5.0 CONNACK 0x88)', async () => {
    for (const [version, answer] of [[4, connackBytes(4, 3)], [5, connackBytes(5, ReasonCode.ServerUnavailable)]] as const) {
      const h = sessionHarness(sessionConfig(slowBroker), { connectOnDial: false })
      h.client.send(connectBytes(version))
      await vi.waitFor(() => expect(h.session.isClosed).toBe(true), { timeout: 2000 })
      expect(h.dials).toHaveLength(3)
      for (const dial of h.dials) expect(dial.received()).toHaveLength(0)
      expect(h.client.received()).toEqual(answer)
      expect(h.ctx.stats.upstreamConnectFailures).toBe(3)
      expect(h.lines.find((l) => l.event === 'session_end')).toMatchObject({ reason: 'upstream_unavailable' })
    }
  })

  it('is not dialled again when the broker refuses: the client is answered at once', async () => {
    // A timeout far off, so only the refusal can end the dial.
    const h = sessionHarness(sessionConfig({ upstream: { host: '127.0.0.1', port: 1, connectTimeout: '30s' } }), { connectOnDial: false })
    h.client.send(connectBytes(4))
    await settle()
    h.dials[0]!.destroy(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }))
    await settle()
    expect(h.dials).toHaveLength(1)
    expect(h.client.received()).toEqual(connackBytes(4, 3))
    expect(h.session.isClosed).toBe(true)
  })
})
