/**
 * Bans on a single Moat (the in-process store, no Redis): the admin ban API (token, limits on the
 * body), a ban closing the sessions it matches, and refusing new ones by address, user name or
 * client id, with the broker receiving nothing from a banned client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { IConnackPacket } from 'mqtt-packet'
import type { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, rawSession, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

const TOKEN = 'local-admin-token-0123456789'

for (const kind of brokerKinds()) {
  const v5 = brokerVersions(kind).includes(5)
  const V = v5 ? 5 : 4
  describe(`bans on one instance (${kind})`, () => {
    let broker: TestBroker
    let moat: Moat
    let admin: string

    beforeAll(async () => {
      broker = await startBroker(kind)
      moat = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0, token: TOKEN } })
      admin = `http://127.0.0.1:${moat.adminAddress()!.port}/bans`
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })

    function api(method: string, body?: unknown, token: string | null = TOKEN, query = ''): Promise<Response> {
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (token !== null) headers.authorization = `Bearer ${token}`
      return fetch(admin + query, { method, headers, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) })
    }

    async function connackOf(clientId: string): Promise<{ code: number | undefined; raw: RawClient }> {
      const raw = new RawClient(moat.address().port, V)
      await raw.connected()
      raw.send(connectPacket(clientId, V))
      const connack = await raw.nextPacket() as IConnackPacket | null
      return { code: connack === null ? undefined : (V === 5 ? connack.reasonCode : connack.returnCode), raw }
    }

    it('refuses the ban API without the token (401) and names the fix', async () => {
      const none = await api('GET', undefined, null)
      expect(none.status).toBe(401)
      expect(none.headers.get('www-authenticate')).toBe('Bearer')
      expect((await api('GET', undefined, 'wrong-token-wrong-token')).status).toBe(401)
      expect((await api('POST', { target: 'user:x' }, 'wrong-token-wrong-token')).status).toBe(401)
      expect((await api('GET')).status).toBe(200)
    })

    it('rejects malformed bans and bodies over 4 KiB', async () => {
      expect((await api('POST', { target: 'nonsense' })).status).toBe(400)
      expect((await api('POST', { target: '10.0.0.0/33' })).status).toBe(400)
      expect((await api('POST', { target: 'user:x', for: 'soon' })).status).toBe(400)
      expect((await api('POST', { target: 'user:x', extra: 1 })).status).toBe(400)
      expect((await api('POST', '{not json')).status).toBe(400)
      expect((await api('POST', { target: 'user:x', reason: 'r'.repeat(5000) })).status).toBe(413)
      expect((await api('DELETE', undefined, TOKEN, '?target=user:nobody')).status).toBe(404)
      const listed = await (await api('GET')).json() as { bans: unknown[] }
      expect(listed.bans).toEqual([])
    })

    it('a client-id ban closes the open session and refuses the next CONNECT; removing it lets the client back', async () => {
      const id = uid('banned')
      const open = await rawSession(moat.address().port, id, V)
      const added = await api('POST', { target: `client:${id}`, for: '1h', reason: 'test' })
      expect(added.status).toBe(201)
      expect(await added.json()).toMatchObject({ ban: { target: `client:${id}`, kind: 'clientId', source: 'admin', reason: 'test' } })
      await open.closed
      if (V === 5) expect(open.packets.find((p) => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x98 })
      expect(moat.stats.cluster.sessionsBanned).toBeGreaterThanOrEqual(1)

      const before = broker.connections()
      const { code, raw } = await connackOf(id)
      expect(code).toBe(V === 5 ? 0x8a : 5)
      await raw.closed
      await broker.clientGone(id)
      expect(broker.received(id).filter((p) => p !== 'connect' && p !== 'disconnect')).toEqual([])
      expect(broker.connections()).toBe(before)
      expect(moat.stats.closedFor('banned')).toBeGreaterThanOrEqual(2)

      expect((await api('DELETE', undefined, TOKEN, `?target=client:${encodeURIComponent(id)}`)).status).toBe(200)
      const back = await connackOf(id)
      expect(back.code).toBe(0)
      back.raw.destroy()
    })

    it('an address ban refuses new connections from it at accept (CONNACK Banned), not other addresses', async () => {
      expect((await api('POST', { target: '127.0.0.8/29' })).status).toBe(201)
      const raw = new RawClient(moat.address().port, V)
      await raw.connected()
      const id = uid('other-addr')
      raw.send(connectPacket(id, V))
      const ok = await raw.nextPacket() as IConnackPacket
      expect(V === 5 ? ok.reasonCode : ok.returnCode).toBe(0) // 127.0.0.1 is outside 127.0.0.8/29
      raw.destroy()
      expect((await api('DELETE', undefined, TOKEN, '?target=127.0.0.8/29')).status).toBe(200)
      // A ban covering 127.0.0.1: refused before anything reaches the broker.
      expect((await api('POST', { target: '127.0.0.0/8', for: '1m' })).status).toBe(201)
      const before = broker.connections()
      const banned = uid('addr')
      const { code, raw: r } = await connackOf(banned)
      expect(code).toBe(V === 5 ? 0x8a : 5)
      await r.closed
      expect(broker.connections()).toBe(before)
      expect(broker.received(banned)).toEqual([])
      expect(moat.stats.refusedFor('mqtt', 'banned')).toBeGreaterThanOrEqual(1)
      expect((await api('DELETE', undefined, TOKEN, '?target=127.0.0.0/8')).status).toBe(200)
    })
  })
}

describe('ban API without a token', () => {
  let broker: TestBroker
  let moat: Moat

  beforeAll(async () => {
    broker = await startBroker('aedes')
    moat = await startMoat(broker, { admin: { host: '127.0.0.1', port: 0 } })
  })
  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('is disabled (403) and says how to enable it', async () => {
    const res = await fetch(`http://127.0.0.1:${moat.adminAddress()!.port}/bans`, { method: 'POST', headers: { authorization: 'Bearer anything-at-all-here' }, body: '{"target":"user:x"}' })
    expect(res.status).toBe(403)
    expect(await res.json()).toEqual({ error: 'the ban API is disabled: set admin.token or admin.tokenFile in the config' })
  })
})
