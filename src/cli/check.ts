/**
 * `moat check`: a config validated as `moat --config` would load it (or, with --no-files, without
 * the files it names), or one question to its policy answered as the running proxy would: the
 * identity and the topic go through the same protocol check and virtual patches as a client's
 * CONNECT, PUBLISH or SUBSCRIBE, then the ACL.
 */
import type { IConnectPacket } from 'mqtt-packet'
import { generate } from 'mqtt-packet'
import { explain } from '../acl/explain.js'
import { plainConnInfo } from '../client/conn-info.js'
import { SessionState } from '../client/session-state.js'
import { ProtocolCheck } from '../checks/protocol.js'
import { Action, type Verdict } from '../checks/verdict.js'
import { ALL_VIRTUAL_PATCHES, MAX_TOPIC_LEVELS, VirtualPatchCheck } from '../checks/virtual-patches.js'
import { ConfigFiles } from '../config/file-reads.js'
import { loadConfig } from '../config/load.js'
import { virtualPatchIds, type MoatConfig, type VirtualPatchId, type VirtualPatchesConfig } from '../config/types.js'
import { PolicyStore } from '../policy/store.js'
import { PublishView, readPublish } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import type { AclQuestion } from './args.js'
import { UsageError } from './usage.js'

/** Exit status of a question the policy denies. */
export const DENIED = 3

export function runCheck(file: string, readFiles: boolean, question: AclQuestion | null, out: NodeJS.WritableStream): number {
  const files = new ConfigFiles(readFiles)
  const config = loadConfig(file, files)
  if (question !== null) return answer(config, question, out)
  const summary = `${config.listeners.length} listener(s), upstream ${config.upstream.host}:${config.upstream.port}`
  if (readFiles) {
    new PolicyStore(config) // eslint-disable-line no-new -- builds the policy too: an unreadable or malformed password file is an error
    out.write(`${file}: valid (${summary})\n`)
    return 0
  }
  const skipped = [...files.skipped].sort((a, b) => a.key.localeCompare(b.key, 'en', { numeric: true }))
  const width = Math.max(0, ...skipped.map((s) => s.key.length)) + 2
  out.write(`${file}: valid without its files (${summary})\n` + (skipped.length === 0
    ? 'it names no files\n'
    : `not read (--no-files); check them where they exist:\n${skipped.map((s) => `  ${s.key.padEnd(width)}${s.path}\n`).join('')}`))
  return 0
}

/** What each virtual patch refuses, as the answer names it. */
const patchRefuses: Record<VirtualPatchId, string> = {
  'cve-2017-7650': 'a client id or user name holding + or #',
  'cve-2018-12543': "a topic beginning with '$' other than $SYS",
  'cve-2019-11779': `a topic or filter of more than ${MAX_TOPIC_LEVELS} levels`,
  'cve-2021-41039': 'too many User Properties',
}

function protocolFault(code: number): string {
  switch (code) {
    case ReasonCode.TopicNameInvalid: return 'a topic name is not empty and holds no + or # [MQTT-3.3.2-2, MQTT-4.7.3-1]'
    case ReasonCode.TopicFilterInvalid: return 'not a topic filter (# only last, + and # fill whole levels, a $share name and a filter after it)'
    case ReasonCode.ClientIdentifierNotValid: return 'the client id is not valid'
    case ReasonCode.ProtocolError: return 'a protocol error'
    default: return 'a malformed string (U+0000, a control character or invalid UTF-8)'
  }
}

const outcome = (v: Verdict): string => (v.action === Action.Disconnect ? 'the client is disconnected' : 'the packet is refused')

/** The checks in front of the ACL: the protocol check, then each virtual patch the config keeps on, alone (so the answer names it). */
function stages(patches: VirtualPatchesConfig): Array<{ name: string; refuses: string | null; check: ProtocolCheck | VirtualPatchCheck }> {
  const off = Object.fromEntries(virtualPatchIds.map((id) => [id, false])) as unknown as VirtualPatchesConfig
  return [
    { name: 'protocol', refuses: null, check: new ProtocolCheck() },
    ...virtualPatchIds.filter((id) => patches[id]).map((id) => ({ name: `virtual patch ${id}`, refuses: patchRefuses[id], check: new VirtualPatchCheck({ ...off, [id]: true }) })),
  ]
}

/** Why the proxy refuses this CONNECT, PUBLISH or SUBSCRIBE before its ACL is asked, or null. */
function refusedBeforeAcl(config: MoatConfig, q: AclQuestion, listener: string): string | null {
  const connect: IConnectPacket = {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: q.clientId,
    ...(q.username === null ? {} : { username: q.username }),
  }
  const all = stages(config.virtualPatches ?? ALL_VIRTUAL_PATCHES)
  const said = (stage: (typeof all)[number], v: Verdict, result = outcome(v)): string =>
    `${stage.name}: ${stage.refuses ?? protocolFault(v.reason)}; ${result}`
  for (const stage of all) {
    const v = stage.check.onConnect(connect)
    if (v.action !== Action.Forward) return said(stage, v, 'the CONNECT is refused')
  }
  if (q.action === 'subscribe') {
    for (const stage of all) {
      const v = stage.check.onSubscribe({ topic: q.topic, qos: q.qos as 0 | 1 | 2 })
      if (v.action !== Action.Forward) return said(stage, v)
    }
    return null
  }
  if (Buffer.byteLength(q.topic) > 0xffff) return 'protocol: a topic is at most 65535 bytes; the client is disconnected'
  // The PUBLISH as a client would send it, read by the proxy's own reader.
  const frame = generate({ cmd: 'publish', topic: q.topic, payload: Buffer.alloc(0), qos: q.qos as 0 | 1 | 2, messageId: 1, retain: q.retain, dup: false })
  let bodyOffset = 1
  while ((frame[bodyOffset]! & 0x80) !== 0) bodyOffset++
  const view = new PublishView()
  const fault = readPublish(frame, frame[0]! & 0x0f, bodyOffset + 1, 4, true, view)
  if (fault !== 0) return `protocol: ${protocolFault(fault)}; the client is disconnected`
  const session = new SessionState(0, plainConnInfo(listener, q.address, 0))
  for (const stage of all) {
    const v = stage.check.onPublish(view, session)
    if (v.action !== Action.Forward) return said(stage, v)
  }
  return null
}

function answer(config: MoatConfig, q: AclQuestion, out: NodeJS.WritableStream): number {
  const names = config.listeners.map((l) => l.name)
  const listener = q.listener ?? names[0]!
  if (!names.includes(listener)) throw new UsageError('check', `--listener '${listener}' is not a listener of this config (${names.join(', ')})`)
  const who = `${q.username ?? '(anonymous)'}:${q.clientId}`
  const asked = `${q.action} ${q.topic} as ${who}`
  const refused = refusedBeforeAcl(config, q, listener)
  if (refused !== null) {
    out.write(`${asked}: deny (${refused})\n`)
    return DENIED
  }
  const d = explain(config.acl, { ...q, listener }, q.action, q.topic, q.qos, q.retain)
  const granted = d.downgradedTo === undefined ? '' : `, granted QoS ${d.downgradedTo}`
  const filtered = d.filteredBy === undefined ? '' : `; not delivered: the topics of ${d.filteredBy.join(', ')}`
  out.write(`${asked}: ${d.allowed ? 'allow' : 'deny'} (${d.rule})${granted}${filtered}\n`)
  return d.allowed ? 0 : DENIED
}
