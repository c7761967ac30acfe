/**
 * Micro-benchmark of the ACL decision on the per-packet path: a device publishing to its own
 * topic, against policies of 50 and 5,000 rules (device-class rules with placeholders, static
 * topic trees, selectors, a final deny). Prints nanoseconds per decision and the heap growth
 * over the run (a steady, allocation-free result stays near zero).
 *
 *   npm run bench:acl -- [--iterations 2000000]
 */
import { parseArgs } from 'node:util'
import { CompiledAcl } from '../src/acl/session-acl.js'
import type { AclRuleConfig } from '../src/config/types.js'
import { plainConnInfo } from '../src/client/conn-info.js'
import { SessionState } from '../src/client/session-state.js'

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000000' } } })
const ITERATIONS = Number(values.iterations)

function rule(i: number, effect: 'allow' | 'deny', topic: string, extra: Partial<AclRuleConfig> = {}): AclRuleConfig {
  return {
    name: `r${i}`, effect, publish: true, subscribe: true, topic,
    users: null, groups: null, listeners: null, sources: null, anonymous: null,
    maxQos: 2, retain: true, onDeny: 'reject', ...extra,
  }
}

function policy(size: number): AclRuleConfig[] {
  const rules: AclRuleConfig[] = [
    rule(0, 'deny', 'devices/{client_id}/firmware/#'),
    rule(1, 'allow', 'devices/{client_id}/#'),
    rule(2, 'allow', 'telemetry/{username}/+'),
  ]
  for (let i = rules.length; i < size - 1; i++) {
    // Static trees of other sites and products, some only for operators.
    rules.push(rule(i, i % 3 === 0 ? 'deny' : 'allow', `site${i}/line${i % 7}/+/status`, i % 5 === 0 ? { users: ['ops'] } : {}))
  }
  rules.push(rule(size - 1, 'deny', '#'))
  return rules
}

function measure(size: number): void {
  const s = new SessionState(1, plainConnInfo('mqtt', '10.0.0.7', 40000))
  s.clientId = 'dev-4711'
  s.username = 'plant-a'
  const acl = new CompiledAcl(policy(size)).bind(s)
  const topics = ['devices/dev-4711/temp', 'telemetry/plant-a/load', 'site40/line5/x/status', 'devices/dev-9/temp']
  let allowed = 0
  for (let i = 0; i < 200_000; i++) if (acl.mayPublish(topics[i & 3]!, 0, false)) allowed++ // warm up
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  const start = process.hrtime.bigint()
  for (let i = 0; i < ITERATIONS; i++) if (acl.mayPublish(topics[i & 3]!, 0, false)) allowed++
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS
  const heapAfter = process.memoryUsage().heapUsed
  console.log(`${String(size).padStart(5)} rules: ${ns.toFixed(0).padStart(4)} ns per decision (mixed own/static/denied topics), heap ${((heapAfter - heapBefore) / 1024).toFixed(0)} KiB over ${ITERATIONS} decisions (${allowed} allowed)`)
}

measure(50)
measure(5000)
