/**
 * `scheduling: batch | normal` as a user runs it: node dist/cli.js (built by test/global-setup.ts)
 * in front of a real broker. What is checked is what the kernel says: the policy of every thread of
 * every Moat process (/proc/PID/task/TID/stat, field 41: 0 SCHED_OTHER, 3 SCHED_BATCH), and that
 * honest traffic still passes (a subscriber on the broker itself sees it).
 */
import { readdirSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, Inbox, shortId } from '../helpers/clients.js'
import { MoatCluster } from '../helpers/moat-cluster.js'
import { MoatProcess } from '../helpers/moat-process.js'

const kind = brokerKinds()[0]!
/** Starting node processes on a busy machine takes a while. */
const SLOW = 60_000
/** sched_setscheduler(2) policy numbers, as /proc/PID/task/TID/stat shows them (field 41). */
const OTHER = 0
const BATCH = 3

/** The scheduling policy of every thread of process `pid`. */
function threadPolicies(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    // Fields after the command name (which may hold spaces) start at field 3; policy is field 41.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38])
  })
}

describe.runIf(process.platform === 'linux')(`scheduling in front of ${kind}`, () => {
  let broker: TestBroker
  let witness: MqttClient
  let seen: Inbox
  let dir: string
  const running: Array<MoatProcess | MoatCluster> = []

  const config = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    listeners: [{ name: 'edge', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: '127.0.0.1', port: broker.port },
    auth: { anonymous: true },
    acl: { rules: [{ name: 'sched', allow: 'all', topic: 'sched/#' }] },
    ...extra,
  })

  /** A client publishes through Moat at `port`; the subscriber on the broker receives it. */
  async function passesTraffic(port: number): Promise<void> {
    const client = await connect(port)
    const topic = `sched/${shortId()}`
    await client.publishAsync(topic, 'x', { qos: 1 })
    await client.endAsync()
    expect((await seen.waitForTopic(topic, SLOW)).payload.toString()).toBe('x')
  }

  beforeAll(async () => {
    broker = await startBroker(kind)
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('sched/#', { qos: 1 })
    dir = mkdtempSync(join(tmpdir(), 'moat-scheduling-'))
  }, SLOW)

  afterEach(async () => {
    for (const moat of running.splice(0)) await (moat instanceof MoatProcess ? moat.stop() : moat.kill())
  })

  afterAll(async () => {
    await witness?.endAsync()
    await broker?.stop()
  })

  it('batch puts every thread under SCHED_BATCH before the first client, and traffic passes', async () => {
    const moat = await MoatProcess.start(dir, 'batch.yaml', config({ scheduling: 'batch' }))
    running.push(moat)
    // Logged before `listening`: set before any client could connect.
    const order = moat.logs.map((l) => l.event)
    expect(order.indexOf('scheduling')).toBeGreaterThanOrEqual(0)
    expect(order.indexOf('scheduling')).toBeLessThan(order.indexOf('listening'))
    expect(moat.logs.find((l) => l.event === 'scheduling')).toMatchObject({ policy: 'batch', pid: moat.pid })
    const policies = threadPolicies(moat.pid)
    expect(policies.length).toBeGreaterThan(1) // V8's and libuv's threads, not only the main one
    expect(policies.every((p) => p === BATCH), `thread policies ${policies}`).toBe(true)
    await passesTraffic(moat.port)
    // Threads made after the policy was set (libuv's pool, if new) inherit it.
    expect(threadPolicies(moat.pid).every((p) => p === BATCH)).toBe(true)
  }, SLOW)

  it('a reload to normal puts every thread back under SCHED_OTHER', async () => {
    const moat = await MoatProcess.start(dir, 'reload.yaml', config({ scheduling: 'batch' }))
    running.push(moat)
    expect(threadPolicies(moat.pid).every((p) => p === BATCH)).toBe(true)
    writeFileSync(join(dir, 'reload.yaml'), JSON.stringify(config({ scheduling: 'normal' })))
    moat.signal('SIGHUP')
    await moat.waitForLog((l) => l.event === 'scheduling' && l.policy === 'normal', SLOW)
    const policies = threadPolicies(moat.pid)
    expect(policies.every((p) => p === OTHER), `thread policies ${policies}`).toBe(true)
    await passesTraffic(moat.port)
  }, SLOW)

  it('absent from the config, the policy Moat was started with is left alone (systemd, chrt)', async () => {
    const moat = await MoatProcess.start(dir, 'inherit.yaml', config(), { launcher: ['chrt', '--batch', '0'] })
    running.push(moat)
    expect(moat.logs.some((l) => l.event === 'scheduling' || l.event === 'scheduling_failed')).toBe(false)
    const policies = threadPolicies(moat.pid)
    expect(policies.every((p) => p === BATCH), `thread policies ${policies}`).toBe(true)
    await passesTraffic(moat.port)
  }, SLOW)

  it('without chrt, says why at warn and serves clients as started', async () => {
    // node is started by its full path: an empty PATH only hides chrt from Moat.
    const moat = await MoatProcess.start(dir, 'no-chrt.yaml', config({ scheduling: 'batch' }), { env: { ...process.env, PATH: join(dir, 'empty') } })
    running.push(moat)
    const line = moat.logs.find((l) => l.event === 'scheduling_failed')
    expect(line).toMatchObject({ level: 'warn', policy: 'batch' })
    expect(String(line!.reason)).toMatch(/chrt was not found/)
    expect(threadPolicies(moat.pid).every((p) => p === OTHER)).toBe(true)
    await passesTraffic(moat.port)
  }, SLOW)

  it('workers: 2 run the primary and both workers under SCHED_BATCH', async () => {
    const file = join(dir, 'workers.yaml')
    writeFileSync(file, JSON.stringify(config({ scheduling: 'batch', workers: 2 })))
    const moat = await MoatCluster.start(file)
    running.push(moat)
    const pids = [moat.child.pid!, ...(moat.find({ event: 'ready', workers: 2 })!.pids as number[])]
    expect(pids).toHaveLength(3)
    for (const pid of pids) {
      const policies = threadPolicies(pid)
      expect(policies.every((p) => p === BATCH), `process ${pid}: thread policies ${policies}`).toBe(true)
    }
    await expect.poll(() => moat.all({ event: 'listening', listener: 'edge' }).length, { timeout: SLOW }).toBe(2)
    await passesTraffic(moat.port('edge'))
    await passesTraffic(moat.port('edge')) // round-robin: the other worker
  }, SLOW)
})
