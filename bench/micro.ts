/**
 * Micro-benchmarks of the per-packet path, on the functions alone (no sockets): the Framer, the
 * PUBLISH fast path through the whole check chain of a realistic policy (ACL of ~50 rules with
 * placeholders, payload caps, generous rates), the ACL decision (50 and 5,000 rules) and a token
 * bucket. Each prints nanoseconds per operation and bytes allocated per operation.
 *
 *   npm run bench:micro -- [--n 1000000] [--json]
 *
 * Allocation is measured as the growth of the V8 heap over a run during which no garbage collection
 * may happen: the script runs with a young generation large enough for the run (`--min/max-semi-space-size`
 * set by the npm script), collects before, and checks with v8's GCProfiler that no GC ran in
 * between (a run during which one did is repeated with fewer iterations). A steady, allocation-free
 * path shows ~0 B/op.
 */
import { parseArgs } from 'node:util'
import { GCProfiler } from 'node:v8'
import { generate } from 'mqtt-packet'
import { CompiledAcl } from '../src/acl/session-acl.js'
import { CheckChain } from '../src/checks/chain.js'
import { Action } from '../src/checks/verdict.js'
import { configFromObject } from '../src/config/load.js'
import { BucketSpec, ExcessAction, TokenBucket } from '../src/limits/token-bucket.js'
import { Framer, type FrameSink } from '../src/protocol/framer.js'
import { PublishView, readPublish } from '../src/protocol/publish.js'
import { plainConnInfo } from '../src/client/conn-info.js'
import { SessionState } from '../src/client/session-state.js'
import { aclRules } from './policy.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '1000000' }, json: { type: 'boolean', default: false } } })
const N = Number(values.n)

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc (npm run bench:micro does)')


export interface MicroResult {
  readonly name: string
  readonly nsPerOp: number
  readonly bytesPerOp: number
}

/** Runs `body(n)` (which performs n operations) and measures time and heap growth without a GC in between. */
async function measure(name: string, body: (n: number) => void): Promise<MicroResult> {
  body(Math.min(N, 200_000)) // warm up: optimised code, caches filled
  let n = N
  let nsPerOp = Infinity
  let bytesPerOp = Infinity
  for (let attempt = 0; attempt < 6; attempt++) {
    gc!()
    await new Promise((r) => setImmediate(r))
    const profiler = new GCProfiler()
    profiler.start()
    const heapBefore = process.memoryUsage().heapUsed
    const t0 = process.hrtime.bigint()
    body(n)
    const t1 = process.hrtime.bigint()
    const heapAfter = process.memoryUsage().heapUsed
    const gcs = profiler.stop()?.statistics.length ?? 0
    const ns = Number(t1 - t0) / n
    if (ns < nsPerOp) nsPerOp = ns
    if (gcs === 0) bytesPerOp = Math.min(bytesPerOp, Math.max(0, heapAfter - heapBefore) / n)
    else n = Math.max(10_000, n >> 2) // a GC ran: the heap delta means nothing; try with fewer ops
    if (attempt >= 2 && bytesPerOp !== Infinity) break
  }
  return { name, nsPerOp, bytesPerOp }
}

// --- Framer: 16 PUBLISH frames of 64 B payload per chunk, every frame handed on as a range of the chunk. ---
const publish64 = generate({ cmd: 'publish', topic: 'devices/dev-4711/temp', payload: Buffer.alloc(64, 7), qos: 0, retain: false, dup: false })
const chunk = Buffer.concat(Array.from({ length: 16 }, () => publish64))
class CountingSink implements FrameSink {
  frames = 0
  bytes = 0
  onFrame(_buf: Buffer, start: number, end: number): boolean {
    this.frames++
    this.bytes += end - start
    return true
  }
  onFrameError(): void {
    throw new Error('framing error in the benchmark')
  }
}
const sink = new CountingSink()
const framer = new Framer(sink, 1 << 20)
// The same stream cut at an odd place: every other frame spans two chunks (the assembly path).
const cut = 16 * publish64.length - 37
const splitA = chunk.subarray(0, cut)
const splitB = chunk.subarray(cut)

// --- PUBLISH fast path through the chain of a realistic policy. ---
function sessionState(): SessionState {
  const s = new SessionState(1, plainConnInfo('bench', '10.0.0.7', 40000))
  s.version = 4
  s.clientId = 'dev-4711'
  s.username = 'plant-a'
  return s
}
const policyConfig = configFromObject({
  listeners: [{ name: 'bench', protocol: 'mqtt', port: 0 }],
  upstream: { host: '127.0.0.1', port: 1 },
  limits: { maxPacketSize: '1MiB', maxPayload: '256KiB', payload: [{ topic: 'camera/#', max: '1MiB' }], messageRate: '100000000/s', byteRate: '100GiB/s' },
  acl: aclRules(50).map((r) => ({ [r.effect]: 'all', topic: r.topic, ...(r.users === null ? {} : { users: r.users }) })),
})
const chainState = sessionState()
const checks = CheckChain.build(policyConfig).forSession(chainState)
const view = new PublishView()
// Topics seen in turn: a repeated own topic is the common case of a device.
const publishFrames = ['devices/dev-4711/temp', 'devices/dev-4711/temp', 'devices/dev-4711/humidity', 'telemetry/plant-a/load']
  .map((topic) => generate({ cmd: 'publish', topic, payload: Buffer.alloc(64, 7), qos: 0, retain: false, dup: false }))

// --- ACL decision alone. ---
function aclFor(size: number) {
  return new CompiledAcl(aclRules(size)).bind(sessionState())
}
const acl50 = aclFor(50)
const acl5000 = aclFor(5000)
const aclTopics = ['devices/dev-4711/temp', 'telemetry/plant-a/load', 'site40/line5/x/status', 'devices/dev-9/temp']
// 1,024 topics in turn: more than a session remembers (acl/recent-decisions.ts), so every call decides.
const freshTopics = Array.from({ length: 1024 }, (_, i) => [`devices/dev-4711/t${i}`, `telemetry/plant-a/l${i}`, `site40/line5/x${i}/status`, `devices/dev-${i}/temp`][i & 3]!)

// --- Token bucket: a generous rate that never bites. ---
const bucket = new TokenBucket(new BucketSpec({ count: 100_000_000, perMs: 1000 }, 100), ExcessAction.Throttle, false, 0)

let sinkhole = 0
const results: MicroResult[] = []
results.push(await measure('framer: 16 frames per chunk (per frame)', (n) => {
  for (let i = 0; i < n; i += 16) framer.push(chunk)
}))
results.push(await measure('framer: frames split across chunks (per frame)', (n) => {
  for (let i = 0; i < n; i += 16) { framer.push(splitA); framer.push(splitB) }
}))
results.push(await measure('publish path: readPublish + chain (ACL 50, size, rate)', (n) => {
  for (let i = 0; i < n; i++) {
    const frame = publishFrames[i & 3]!
    if (readPublish(frame, frame[0]! & 0x0f, 2, 4, true, view) !== 0) throw new Error('malformed')
    if (checks.runPublish(view, chainState).action !== Action.Forward) throw new Error(`denied by ${checks.decidedBy}`)
    view.clear()
  }
}))
results.push(await measure('ACL match, 50 rules (4 topics in turn: remembered)', (n) => {
  for (let i = 0; i < n; i++) if (acl50.mayPublish(aclTopics[i & 3]!, 0, false)) sinkhole++
}))
results.push(await measure('ACL match, 50 rules (new topic every call)', (n) => {
  for (let i = 0; i < n; i++) if (acl50.mayPublish(freshTopics[i & 1023]!, 0, false)) sinkhole++
}))
results.push(await measure('ACL match, 5,000 rules (new topic every call)', (n) => {
  for (let i = 0; i < n; i++) if (acl5000.mayPublish(freshTopics[i & 1023]!, 0, false)) sinkhole++
}))
let now = 0
results.push(await measure('token bucket: waitFor + take', (n) => {
  for (let i = 0; i < n; i++) {
    if ((i & 63) === 0) now++
    if (bucket.waitFor(1, now) === 0) bucket.take(1)
  }
}))

if (sinkhole < 0 || sink.frames === 0) console.log('unreachable')
if (values.json) console.log(JSON.stringify({ node: process.version, n: N, results }, null, 2))
else {
  console.log(`micro-benchmarks, ${N} ops each (Node ${process.version})`)
  for (const r of results) console.log(`${r.name.padEnd(58)} ${r.nsPerOp.toFixed(1).padStart(8)} ns/op ${r.bytesPerOp.toFixed(2).padStart(8)} B/op`)
}
