/**
 * `workers: 2` keeps the limits that must be global consistent across workers: an address's open
 * connections are counted in the primary's store whichever worker accepted them, and a ban made
 * through the primary's admin endpoint (`moat ban`) is enforced by every worker. Real CLI, real
 * broker, raw MQTT clients; every refusal shown from both sides (CONNACK code, broker saw nothing).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { IConnackPacket } from 'mqtt-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connectPacket, RawClient, uid } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'

const kind = brokerKinds()[0]!
const root = fileURLToPath(new URL('../..', import.meta.url))
const cli = join(root, 'dist/cli.js')
const SLOW = 120_000
const TOKEN = 'workers-admin-token-0123456789'

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d })
    child.stderr.on('data', (d: Buffer) => { stderr += d })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe(`workers: 2, global limits (${kind})`, () => {
  let broker: TestBroker
  let moat: MoatCluster
  const open: RawClient[] = []

  /** One MQTT 3.1.1 connection attempt: its CONNACK return code (the client stays open when admitted). */
  async function attempt(clientId: string): Promise<number> {
    const raw = new RawClient(moat.port('edge'), 4)
    await raw.connected()
    raw.send(connectPacket(clientId, 4))
    const connack = await raw.nextPacket(0, SLOW) as IConnackPacket | null
    if (connack?.returnCode === 0) open.push(raw)
    else raw.destroy()
    return connack?.returnCode ?? -1
  }

  const accepted = async (worker: number): Promise<number> => moat.value(`moat_worker_connections_accepted_total{worker="${worker}"}`)

  beforeAll(async () => {
    broker = await startBroker(kind)
    const file = join(mkdtempSync(join(tmpdir(), 'moat-workers-limits-')), 'moat.yaml')
    writeFileSync(file, [
      'workers: 2',
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      `admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }`,
      'auth: { anonymous: true }',
      'limits: { connections: { perAddress: 2 } }',
    ].join('\n') + '\n')
    moat = await MoatCluster.start(file)
  }, SLOW)

  afterAll(async () => {
    for (const raw of open) raw.destroy()
    await moat?.kill()
    await broker?.stop()
  })

  it("an address's open connections are counted across both workers", async () => {
    const before = broker.connections()
    const codes: number[] = []
    for (let i = 0; i < 4; i++) codes.push(await attempt(uid('w')))
    // Both workers took attempts (round robin): per-worker counting would have let at least 3 in.
    expect(await accepted(1)).toBeGreaterThanOrEqual(1)
    expect(await accepted(2)).toBeGreaterThanOrEqual(1)
    expect(codes.filter((c) => c === 0)).toHaveLength(2)
    expect(codes.filter((c) => c === 3)).toHaveLength(2) // server unavailable: too many from this address
    await expect.poll(() => broker.connections(), { timeout: SLOW }).toBe(before + 2)
    expect(broker.connections()).toBe(before + 2)
    // A slot comes back when its connection ends, whichever worker held it.
    open.shift()!.destroy()
    await expect.poll(() => attempt(uid('again')), { timeout: SLOW, interval: 200 }).toBe(0)
    for (const raw of open.splice(0)) raw.destroy()
  }, SLOW)

  it('a ban made through the primary (moat ban add) is enforced by every worker, and lifted by moat ban remove', async () => {
    const admin = `http://127.0.0.1:${moat.adminPort}`
    const id = uid('evil')
    const added = await run(['ban', 'add', `client:${id}`, '--for', '1h', '--admin', admin, '--token', TOKEN])
    expect(added.code, added.stderr).toBe(0)
    const before = broker.connections()
    const accepts = [await accepted(1), await accepted(2)]
    // Four attempts, spread over both workers: every one refused with 3.1.1 code 5 (not authorized).
    const codes: number[] = []
    for (let i = 0; i < 4; i++) codes.push(await attempt(id))
    expect(codes).toEqual([5, 5, 5, 5])
    expect(await accepted(1)).toBeGreaterThan(accepts[0]!)
    expect(await accepted(2)).toBeGreaterThan(accepts[1]!)
    expect(broker.connections()).toBe(before)
    const listed = await run(['ban', 'list', '--admin', admin, '--token', TOKEN])
    expect(listed.stdout).toContain(`client:${id}`)
    expect((await run(['ban', 'remove', `client:${id}`, '--admin', admin, '--token', TOKEN])).code).toBe(0)
    await expect.poll(() => attempt(id), { timeout: SLOW, interval: 200 }).toBe(0)
    for (const raw of open.splice(0)) raw.destroy()
  }, SLOW)
})
