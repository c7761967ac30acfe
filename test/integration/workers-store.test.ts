/**
 * The workers store over a real IPC channel: forked processes running the real WorkerStore
 * (test/fixtures/workers/store-worker.mjs) talk to a StoreHost in this process, as cluster workers
 * talk to the primary. Limits hold across workers, a dead worker's slots come back, bans reach
 * every worker, and a primary that does not answer means fail closed.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import type { Channel, StoreRequest } from '../../src/workers/messages.js'
import type { Ban } from '../../src/fleet/shared-store.js'
import { StoreHost } from '../../src/workers/store-host.js'

const script = fileURLToPath(new URL('../fixtures/workers/store-worker.mjs', import.meta.url))

class StoreWorker {
  private seq = 0
  private readonly waiting = new Map<number, (result: unknown) => void>()

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { seq?: number; result?: unknown }) => {
      if (typeof m?.seq !== 'number') return
      this.waiting.get(m.seq)?.(m.result)
      this.waiting.delete(m.seq)
    })
  }

  static async start(env: Record<string, string> = {}): Promise<StoreWorker> {
    const child = fork(script, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const worker = new StoreWorker(child)
    running.push(worker)
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m: { ready?: boolean }) => { if (m?.ready === true) resolve() })
      child.once('exit', (code) => reject(new Error(`store worker exited (${code}) before it was ready`)))
    })
    return worker
  }

  get channel(): Channel {
    return this.child as unknown as Channel
  }

  ask<T = unknown>(test: string, args: Record<string, unknown> = {}): Promise<T> {
    const seq = ++this.seq
    return new Promise((resolve) => {
      this.waiting.set(seq, resolve as (result: unknown) => void)
      this.child.send({ test, seq, ...args })
    })
  }

  acquire(key: string, max: number): Promise<boolean> {
    return this.ask<boolean>('acquire', { key, max })
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGKILL')
    await exited
  }
}

const running: StoreWorker[] = []
let host: StoreHost | null = null

afterEach(async () => {
  await Promise.all(running.splice(0).map((w) => w.kill()))
  host?.close()
  host = null
})

/** A primary's StoreHost serving the given workers, detaching each when it ends. */
function serve(...workers: StoreWorker[]): StoreHost {
  host = new StoreHost()
  for (const w of workers) {
    host.attach(w.channel)
    w.child.on('exit', () => host?.detach(w.channel))
  }
  return host
}

function ban(value: string): Ban {
  return { kind: 'address', value, until: null, reason: 'test', createdAt: Date.now(), source: 'admin' }
}

describe('workers store: one set of limits for every worker', () => {
  it('caps a key across two worker processes, and a release frees a slot for either', async () => {
    const a = await StoreWorker.start()
    const b = await StoreWorker.start()
    const h = serve(a, b)
    expect(await a.acquire('a:10.0.0.1', 3)).toBe(true)
    expect(await b.acquire('a:10.0.0.1', 3)).toBe(true)
    expect(await a.acquire('a:10.0.0.1', 3)).toBe(true)
    // The fourth, from either worker, is over the cap of 3 held across both.
    expect(await b.acquire('a:10.0.0.1', 3)).toBe(false)
    expect(await a.acquire('a:10.0.0.1', 3)).toBe(false)
    // Another key has its own count.
    expect(await b.acquire('a:10.0.0.2', 3)).toBe(true)
    await a.ask('release', { key: 'a:10.0.0.1' })
    await expect.poll(() => h.heldBy(a.channel)).toBe(1)
    expect(await b.acquire('a:10.0.0.1', 3)).toBe(true)
    expect(await a.acquire('a:10.0.0.1', 3)).toBe(false)
  })

  it('a worker cannot release a slot it does not hold', async () => {
    const a = await StoreWorker.start()
    const b = await StoreWorker.start()
    const h = serve(a, b)
    expect(await a.acquire('u:alice', 1)).toBe(true)
    await b.ask('release', { key: 'u:alice' })
    // The release went over the channel before this call, so it has been handled (or ignored).
    expect(await b.acquire('u:alice', 1)).toBe(false)
    expect(h.heldBy(a.channel)).toBe(1)
    expect(h.heldBy(b.channel)).toBe(0)
  })

  it('gives back every slot of a worker that dies', async () => {
    const a = await StoreWorker.start()
    const b = await StoreWorker.start()
    const h = serve(a, b)
    expect(await a.acquire('a:10.0.0.9', 2)).toBe(true)
    expect(await a.acquire('a:10.0.0.9', 2)).toBe(true)
    expect(await b.acquire('a:10.0.0.9', 2)).toBe(false)
    expect(h.store.size.slots).toBe(1)
    await a.kill()
    await expect.poll(() => h.store.size.slots).toBe(0)
    expect(await b.acquire('a:10.0.0.9', 2)).toBe(true)
    expect(await b.acquire('a:10.0.0.9', 2)).toBe(true)
    expect(await b.acquire('a:10.0.0.9', 2)).toBe(false)
  })

  it('shares buckets and counting windows across workers', async () => {
    const a = await StoreWorker.start()
    const b = await StoreWorker.start()
    serve(a, b)
    // A bucket of 2 tokens that refills negligibly during the test.
    expect(await a.ask('take', { key: 'r:x', capacity: 2, refillPerMs: 1e-9 })).toBe(true)
    expect(await b.ask('take', { key: 'r:x', capacity: 2, refillPerMs: 1e-9 })).toBe(true)
    expect(await a.ask('take', { key: 'r:x', capacity: 2, refillPerMs: 1e-9 })).toBe(false)
    expect(await a.ask('count', { key: 'f:bob', windowMs: 600_000 })).toBe(1)
    expect(await b.ask('count', { key: 'f:bob', windowMs: 600_000 })).toBe(2)
  })

  it('pushes a ban made in one worker to every worker, and its removal too', async () => {
    const a = await StoreWorker.start()
    const b = await StoreWorker.start()
    serve(a, b)
    const made = await a.ask<Ban[]>('addBan', { ban: ban('192.0.2.7') })
    // The worker that made it sees it as soon as addBan resolves.
    expect(made.map((x) => x.value)).toEqual(['192.0.2.7'])
    await expect.poll(async () => (await b.ask<Ban[]>('bans')).map((x) => x.value)).toEqual(['192.0.2.7'])
    expect(await b.ask('removeBan', { kind: 'address', value: '192.0.2.7' })).toBe(true)
    await expect.poll(async () => (await a.ask<Ban[]>('bans')).length).toBe(0)
    expect(await a.ask('removeBan', { kind: 'address', value: '192.0.2.7' })).toBe(false)
  })

  it('a store made after the primary attached the worker asks for the bans made before it', async () => {
    const a = await StoreWorker.start()
    const h = serve(a)
    await a.ask('addBan', { ban: ban('192.0.2.99') })
    const late = await StoreWorker.start({ STORE_LATE: '1' })
    h.attach(late.channel) // the list pushed now finds no store in that process
    await late.ask('create')
    await expect.poll(async () => (await late.ask<Ban[]>('bans')).map((x) => x.value)).toEqual(['192.0.2.99'])
  })

  it('a worker that starts later gets the bans made before it', async () => {
    const a = await StoreWorker.start()
    const h = serve(a)
    await a.ask('addBan', { ban: ban('198.51.100.0/24') })
    const late = await StoreWorker.start()
    h.attach(late.channel)
    await expect.poll(async () => (await late.ask<Ban[]>('bans')).map((x) => x.value)).toEqual(['198.51.100.0/24'])
  })
})

describe('workers store: a primary that does not answer', () => {
  it('fails closed: slots and tokens refused, a count over any threshold, each counted', async () => {
    const lonely = await StoreWorker.start({ STORE_TIMEOUT_MS: '200' }) // no StoreHost attached
    expect(await lonely.acquire('a:10.0.0.1', 100)).toBe(false)
    expect(await lonely.ask('take', { key: 'r:x', capacity: 100, refillPerMs: 1 })).toBe(false)
    expect(await lonely.ask<number>('count', { key: 'f:x', windowMs: 1000 })).toBeGreaterThan(1e9)
    expect(await lonely.ask('stats')).toEqual({ failures: 3, pending: 0 })
  })

  it('bounds the calls waiting for the primary: past the bound a call is refused at once', async () => {
    const w = await StoreWorker.start({ STORE_TIMEOUT_MS: '60000', STORE_MAX_PENDING: '2' }) // nobody answers
    void w.acquire('a:1', 5) // these two wait (for ever: no primary)
    void w.acquire('a:2', 5)
    // The third finds two calls waiting: refused without waiting for the timeout.
    expect(await w.acquire('a:3', 5)).toBe(false)
    expect(await w.ask('stats')).toEqual({ failures: 1, pending: 2 })
  })

  it('a slot granted after the worker gave up waiting is given back at once', async () => {
    const w = await StoreWorker.start({ STORE_TIMEOUT_MS: '200' })
    // This test plays a slow primary by hand.
    const requests: StoreRequest[] = []
    w.child.on('message', (m: StoreRequest) => { if (m?.moat === 'store') requests.push(m) })
    expect(await w.acquire('a:10.0.0.5', 1)).toBe(false) // timed out: refused (fail closed)
    expect(requests).toMatchObject([{ op: 'acquire', key: 'a:10.0.0.5' }])
    w.child.send({ moat: 'store-reply', id: requests[0]!.id, op: 'acquire', key: 'a:10.0.0.5', result: true })
    await expect.poll(() => requests.slice(1)).toMatchObject([{ op: 'release', key: 'a:10.0.0.5' }])
  })

  it('failure mode local: the worker answers from its own limits meanwhile', async () => {
    const lonely = await StoreWorker.start({ STORE_TIMEOUT_MS: '200', STORE_FAILURE_MODE: 'local' })
    expect(await lonely.acquire('a:10.0.0.1', 1)).toBe(true)
    expect(await lonely.acquire('a:10.0.0.1', 1)).toBe(false)
    await lonely.ask('release', { key: 'a:10.0.0.1' })
    expect(await lonely.acquire('a:10.0.0.1', 1)).toBe(true)
  })
})
