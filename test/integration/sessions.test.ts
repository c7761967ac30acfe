/**
 * The sessions view on one Moat (no Redis): `GET /sessions` with its filters and paging, and
 * `DELETE /sessions/{clientId}`, through the admin endpoint and through `moat sessions` run as the
 * real binary. Real broker, real clients (MQTT.js, raw sockets, mosquitto_sub). A kick is shown from
 * both sides: the client's answer (5.0 DISCONNECT 0x98; 3.1.1 closed) and a broker that sees the
 * connection end and receives nothing the client sent after the kick.
 */
import { spawn } from 'node:child_process'
import { Writable } from 'node:stream'
import type { IClientOptions, MqttClient } from 'mqtt'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { Moat } from '../../src/moat.js'
import { brokerKinds, brokerVersions, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, connectPacket, RawClient, uid } from '../helpers/clients.js'
import { passwordAuth, testConfig } from '../helpers/moat.js'
import { runCli, type Run } from '../helpers/cli.js'
import { programPath } from '../helpers/programs.js'

const TOKEN = 'sessions-admin-token-0123456789'
const PASSWORD = 'Pw-not-to-be-listed-7f3a'

const run = (args: string[], env: Record<string, string> = {}): Promise<Run> => runCli(args, { env: { ...process.env, MOAT_ADMIN_TOKEN: '', ...env } })

interface Row { clientId: string; username: string | null; address: string; port: number; protocol: string; state: string; subscriptions: number; instance?: string }

for (const kind of brokerKinds()) {
  const v5 = brokerVersions(kind).includes(5)
  describe(`the sessions view on one instance (${kind})`, { timeout: 60_000 }, () => {
    let broker: TestBroker
    let moat: Moat
    let admin: string
    const logs: Array<Record<string, unknown>> = []
    const clients: MqttClient[] = []
    const raws: RawClient[] = []

    beforeAll(async () => {
      broker = await startBroker(kind)
      const sink = new Writable({ write(chunk: Buffer, _e, done) { logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
      const auth = await passwordAuth(['alice', 'bob', 'carol', 'dave'], PASSWORD)
      moat = new Moat(testConfig(broker, { admin: { host: '127.0.0.1', port: 0, token: TOKEN }, auth }), { logger: pino({ level: 'info' }, sink) })
      await moat.start()
      admin = `http://127.0.0.1:${moat.adminAddress()!.port}`
    })
    afterAll(async () => {
      for (const c of clients) c.end(true)
      for (const r of raws) r.destroy()
      await moat?.shutdown(0)
      await broker?.stop()
    })

    function client(username: string, options: IClientOptions = {}): Promise<MqttClient> {
      return connect(moat.address().port, { username, password: PASSWORD, clientId: uid(username), ...options }).then((c) => {
        clients.push(c)
        return c
      })
    }

    async function list(query = '', token: string | null = TOKEN): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
      const res = await fetch(`${admin}/sessions${query}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } })
      const text = await res.text()
      return { status: res.status, body: JSON.parse(text) as Record<string, unknown>, text }
    }

    function rows(body: Record<string, unknown>): Row[] {
      return body.sessions as Row[]
    }

    it('lists the sessions with filters and pages in a stable order, and no secret', async () => {
      const a1 = await client('alice', { protocolVersion: 4 })
      const a2 = await client('alice', { protocolVersion: v5 ? 5 : 4 })
      const b = await client('bob', { protocolVersion: 4 })
      await b.subscribeAsync('sessions/view/#')
      const ids = [a1.options.clientId!, a2.options.clientId!].sort()

      const all = await list()
      expect(all.status).toBe(200)
      expect(all.text).not.toContain(PASSWORD)
      expect(all.text).not.toContain(TOKEN)
      expect(all.body.instances).toEqual([{ instance: null, ok: true }])
      const bobRow = rows(all.body).find((r) => r.clientId === b.options.clientId)!
      expect(bobRow).toMatchObject({ username: 'bob', address: '127.0.0.1', listener: 'mqtt', transport: 'tcp', protocol: '3.1.1', state: 'open', keepalive: 60, tls: null, subscriptions: 1 })
      expect(Date.parse((bobRow as unknown as { connectedSince: string }).connectedSince)).toBeLessThanOrEqual(Date.now())

      const alice = await list('?user=alice')
      expect(rows(alice.body).map((r) => r.clientId)).toEqual(ids)
      expect(rows(alice.body)[ids.indexOf(a2.options.clientId!)]!.protocol).toBe(v5 ? '5.0' : '3.1.1')
      expect(rows((await list(`?clientId=${encodeURIComponent(b.options.clientId!)}`)).body).map((r) => r.username)).toEqual(['bob'])
      expect(rows((await list('?user=alice&address=127.0.0.0/8')).body)).toHaveLength(2)
      expect(rows((await list('?user=alice&address=127.0.0.1')).body)).toHaveLength(2)
      expect(rows((await list('?address=10.0.0.0/8')).body)).toEqual([])

      // Paging: one row a page, in client id order, until `next` is null.
      const first = await list('?user=alice&limit=1')
      expect(rows(first.body).map((r) => r.clientId)).toEqual([ids[0]])
      expect(typeof first.body.next).toBe('string')
      const second = await list(`?user=alice&limit=1&cursor=${first.body.next as string}`)
      expect(rows(second.body).map((r) => r.clientId)).toEqual([ids[1]])
      expect(second.body.next).toBeNull()

      for (const bad of ['?limit=0', '?limit=1001', '?address=nowhere', '?cursor=xyz', '?users=alice', '?scope=world']) {
        const res = await list(bad)
        expect(res.status, bad).toBe(400)
        expect(res.body.sessions).toBeUndefined()
      }

      // The same through `moat sessions list`, the real binary.
      const cli = await run(['sessions', 'list', '--user', 'alice', '--admin', admin], { MOAT_ADMIN_TOKEN: TOKEN })
      expect(cli.stderr).toBe('')
      expect(cli.code).toBe(0)
      const lines = cli.stdout.trim().split('\n')
      expect(lines.map((l) => l.split('\t')[0])).toEqual(ids)
      expect(lines[0]!.split('\t').slice(1, 3)).toEqual(['alice', `127.0.0.1:${rows(alice.body)[0]!.port}`])
      const paged = await run(['sessions', 'list', '--user', 'alice', '--limit', '1', '--admin', admin, '--token', TOKEN])
      expect(paged.code).toBe(0)
      expect(paged.stdout.trim().split('\n')).toHaveLength(1)
      expect(paged.stderr).toMatch(/^moat: more sessions: --cursor \S+ \(or --all\)\n$/)
      const every = await run(['sessions', 'list', '--user', 'alice', '--limit', '1', '--all', '--json', '--admin', admin, '--token', TOKEN])
      expect(every.code).toBe(0)
      const pages = every.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(pages.flatMap((p) => rows(p).map((r) => r.clientId))).toEqual(ids)
    })

    // Defined only where it can run (Aedes speaks 3.1.1), so no skipped test is reported.
    if (v5) it('kicks a 5.0 MQTT.js client: DISCONNECT 0x98, the broker sees it go, counted and audited', async () => {
      const c = await client('carol', { protocolVersion: 5 })
      const id = c.options.clientId!
      const disconnect = new Promise<number | undefined>((resolve) => c.once('disconnect', (packet) => resolve(packet.reasonCode)))
      const kicked = await run(['sessions', 'kick', id, '--admin', admin, '--token', TOKEN])
      expect(kicked.stderr).toBe('')
      expect(kicked.code).toBe(0)
      expect(kicked.stdout).toMatch(new RegExp(`^kicked ${id} \\(carol, 127\\.0\\.0\\.1:\\d+\\) on this instance\n$`))
      expect(await disconnect).toBe(0x98)
      await broker.clientGone(id)
      expect(rows((await list(`?clientId=${id}`)).body)).toEqual([])
      expect(moat.stats.sessionsClosed[moat.stats.sessionsClosed.length - 1]).toBeGreaterThanOrEqual(1)
      const metrics = await (await fetch(`${admin}/metrics`)).text()
      expect(metrics).toMatch(/^moat_sessions_closed_total\{reason="kicked"\} [1-9]/m)
      const audit = logs.find((l) => l.event === 'session_kicked' && l.clientId === id)
      expect(audit).toMatchObject({ audit: true, username: 'carol', by: '127.0.0.1', listener: 'mqtt' })
      expect(JSON.stringify(logs)).not.toContain(TOKEN)
      // Not found any more: exit 1, the error named.
      const again = await run(['sessions', 'kick', id, '--admin', admin, '--token', TOKEN])
      expect(again.code).toBe(1)
      expect(again.stderr).toBe(`moat: no session of client id '${id}' [MOAT_ERR_SESSIONS]\n`)
    })

    it('kicks a 3.1.1 client: closed, and nothing it sends after the kick reaches the broker', async () => {
      const id = uid('dave')
      const raw = new RawClient(moat.address().port, 4)
      raws.push(raw)
      await raw.connected()
      raw.send(connectPacket(id, 4, { username: 'dave', password: Buffer.from(PASSWORD) }))
      expect((await raw.nextPacket())?.cmd).toBe('connack')
      raw.send({ cmd: 'publish', topic: 'sessions/before-kick', payload: Buffer.from('x'), qos: 0, retain: false, dup: false } as never)
      await vi.waitFor(() => expect(broker.received(id)).toContain('publish sessions/before-kick'))

      const res = await fetch(`${admin}/sessions/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } })
      expect(res.status).toBe(200)
      const body = await res.json() as { kicked: Row[] }
      expect(body.kicked.map((r) => [r.clientId, r.username, r.protocol])).toEqual([[id, 'dave', '3.1.1']])
      // Sent once the kick is answered: never forwarded.
      raw.send({ cmd: 'publish', topic: 'sessions/after-kick', payload: Buffer.from('y'), qos: 0, retain: false, dup: false } as never)
      expect(await raw.nextPacket()).toBeNull() // closed, with no packet (3.1.1 has no DISCONNECT from the server)
      await raw.closed
      await broker.clientGone(id)
      expect(broker.received(id)).toEqual(['connect', 'publish sessions/before-kick'])
    })

    const mosquittoSub = kind === 'mosquitto' ? programPath('mosquitto_sub', 'mosquitto-clients') : null
    if (mosquittoSub !== null) it('kicks mosquitto_sub (3.1.1): it sees the close and connects again, as after any server close (a kick is not a ban)', async () => {
      const id = uid('sub')
      const sub = spawn(mosquittoSub!, ['-V', 'mqttv311', '-h', '127.0.0.1', '-p', String(moat.address().port), '-u', 'bob', '-P', PASSWORD, '-i', id, '-t', 'sessions/sub'])
      try {
        await vi.waitFor(() => expect(moat.sessionPage({ clientId: id }).rows.filter((r) => r.state === 'open')).toHaveLength(1), { timeout: 10_000 })
        const first = moat.sessionPage({ clientId: id }).rows[0]!
        const kicked = await run(['sessions', 'kick', id, '--admin', admin, '--token', TOKEN, '--json'])
        expect(kicked.code).toBe(0)
        expect((JSON.parse(kicked.stdout) as { kicked: Row[] }).kicked.map((r) => r.port)).toEqual([first.port])
        await broker.clientGone(id)
        // libmosquitto reconnects after a lost connection: a new session, from a new port.
        await vi.waitFor(() => {
          const now = moat.sessionPage({ clientId: id }).rows
          expect(now).toHaveLength(1)
          expect(now[0]!.port).not.toBe(first.port)
        }, { timeout: 15_000 })
      } finally {
        sub.kill()
      }
    })

    it('refuses a missing or wrong token (401): nothing listed, nothing kicked', async () => {
      const e = await client('bob', { protocolVersion: 4 })
      const id = e.options.clientId!
      for (const token of [null, 'wrong-token-0123456789', `${TOKEN}x`]) {
        const listed = await list('', token)
        expect(listed.status).toBe(401)
        expect(listed.body).toEqual({ error: 'a valid Authorization: Bearer token is required' })
        const res = await fetch(`${admin}/sessions/${encodeURIComponent(id)}`, { method: 'DELETE', headers: token === null ? {} : { authorization: `Bearer ${token}` } })
        expect(res.status).toBe(401)
      }
      const cli = await run(['sessions', 'kick', id, '--admin', admin, '--token', 'wrong-token-0123456789'])
      expect(cli.code).toBe(1)
      expect(cli.stderr).toBe(`moat: ${admin}: a valid Authorization: Bearer token is required [MOAT_ERR_SESSIONS]\n`)
      // Still connected, still relayed.
      expect(rows((await list(`?clientId=${id}`)).body)).toHaveLength(1)
      await e.subscribeAsync('sessions/still')
      const got = new Promise<string>((resolve) => e.once('message', (_t, p) => resolve(p.toString())))
      await e.publishAsync('sessions/still', 'alive')
      expect(await got).toBe('alive')
    })

    it('is disabled (403) on an admin endpoint without a token', async () => {
      const open = new Moat(testConfig(broker, { admin: { host: '127.0.0.1', port: 0 } }), { logger: pino({ level: 'silent' }) })
      await open.start()
      try {
        const c = await connect(open.address().port, { clientId: uid('anon') })
        clients.push(c)
        const base = `http://127.0.0.1:${open.adminAddress()!.port}`
        const res = await fetch(`${base}/sessions`)
        expect(res.status).toBe(403)
        expect(await res.json()).toEqual({ error: 'the sessions API is disabled: set admin.token or admin.tokenFile in the config' })
        expect((await fetch(`${base}/sessions/${c.options.clientId!}`, { method: 'DELETE' })).status).toBe(403)
        expect(c.connected).toBe(true)
        expect(open.sessionPage({}).rows.map((r) => r.clientId)).toEqual([c.options.clientId])
      } finally {
        await open.shutdown(0)
      }
    })
  })
}
