/**
 * What the limits checks cost per PUBLISH, measured on the functions alone (no sockets), so the
 * figure does not depend on what else the machine is doing as much as an end-to-end run does:
 * the chain of a config with no limits (protocol check only) against one with every publish-path
 * limit on and never biting (size caps with a topic rule, message/byte/packet rates, a topic rate,
 * per-user rates, in-flight quota).
 *
 *   npm run build && tsc -p tsconfig.bench.json && node .bench-dist/bench/limits-checks.js [--n 2000000]
 */
import { parseArgs } from 'node:util'
import { generate } from 'mqtt-packet'
import { CheckChain } from '../src/checks/chain.js'
import { configFromObject } from '../src/config/load.js'
import { PublishView, readPublish } from '../src/protocol/publish.js'
import { plainConnInfo } from '../src/client/conn-info.js'
import { SessionState } from '../src/client/session-state.js'

const { values } = parseArgs({ options: { n: { type: 'string', default: '2000000' } } })
const N = Number(values.n)

function chainFor(limits: Record<string, unknown>) {
  const config = configFromObject({ listeners: [{ name: 'b', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1 }, limits: { maxPacketSize: '1MiB', ...limits } })
  const s = new SessionState(1, plainConnInfo('b', '127.0.0.1', 1))
  s.version = 4
  s.username = 'bench-user'
  return { checks: CheckChain.build(config).forSession(s), s, names: CheckChain.build(config).names }
}

const frame = generate({ cmd: 'publish', topic: 'bench/device-17/load', payload: Buffer.alloc(64, 7), qos: 0, retain: false, dup: false })
const view = new PublishView()

function run(label: string, limits: Record<string, unknown>): void {
  const { checks, s, names } = chainFor(limits)
  const measure = (n: number): number => {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      readPublish(frame, frame[0]! & 0x0f, 2, 4, true, view)
      if (checks.runPublish(view, s).action !== 0) throw new Error('a limit bit: the bench must not be limited')
      view.clear()
    }
    return Number(process.hrtime.bigint() - start) / n
  }
  measure(N / 10) // warm up
  const ns = Math.min(measure(N), measure(N), measure(N))
  console.log(JSON.stringify({ label, checks: names, nsPerPublish: Math.round(ns) }))
}

run('no limits', {})
run('maxPayload only', { maxPayload: '512KiB' })
run('payload rule', { payload: [{ topic: 'camera/#', max: '1MiB' }] })
run('messageRate only', { messageRate: '100000000/s' })
run('message+byte+packet rates', { messageRate: '100000000/s', byteRate: '100GiB/s', packetRate: '100000000/s' })
run('topic rate', { topics: [{ topic: 'bench/+/load', rate: '100000000/s' }] })
run('perUsername', { perUsername: { messageRate: '100000000/s' } })
run('every publish-path limit, none biting', {
  maxPayload: '512KiB',
  payload: [{ topic: 'camera/#', max: '1MiB' }],
  messageRate: '100000000/s',
  byteRate: '100GiB/s',
  packetRate: '100000000/s',
  topics: [{ topic: 'bench/+/load', rate: '100000000/s' }],
  perUsername: { messageRate: '100000000/s' },
  maxInflight: 100,
})
