/**
 * Virtual patches: the known triggers of broker CVEs that the protocol rules alone would let
 * through, refused before they reach the broker (docs/virtual-patching.md has the table of CVEs,
 * what Moat does about each, and the test that shows it). Each is on by default and can be turned
 * off under `virtualPatches` for a broker that is not affected; where the broker refuses the same
 * input itself, Moat answers with the broker's own code.
 *
 * - cve-2017-7650: a client id or user name holding an MQTT wildcard (+ or #): where a broker's
 *   ACL patterns substitute them (%c, %u), they widen into wildcards.
 * - cve-2018-12543: a topic name beginning with '$' but not '$SYS' in a client PUBLISH or a will:
 *   Mosquitto 1.5–1.5.2 asserted and exited on one. '$SYS' is left to the broker, which keeps
 *   clients out of it itself (a bridge's will on its connection state topic is allowed there).
 * - cve-2019-11779: a topic or topic filter of more than MAX_TOPIC_LEVELS levels: Mosquitto
 *   1.5.0–1.6.5 overflowed its stack on a SUBSCRIBE of about 65,400 '/'.
 *
 * One more is applied where 5.0 properties are read, not here: more than MAX_USER_PROPERTIES User
 * Properties in one block (cve-2021-41039: protocol/properties.ts, protocol/publish.ts), refused
 * with Quota Exceeded by the session.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import type { MoatConfig, VirtualPatchesConfig } from '../config/types.js'
import { MAX_USER_PROPERTIES } from '../protocol/properties.js'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { sharedCheck, type Check, type CheckFactory } from './check.js'
import { disconnect, FORWARD, reject, type Verdict } from './verdict.js'

/** Levels a topic name or filter may have: Mosquitto 2.0 refuses more than 200 separators itself. */
export const MAX_TOPIC_LEVELS = 201

const WILDCARD_CLIENT_ID = disconnect(ReasonCode.ClientIdentifierNotValid, 'invalid_client_id')
const WILDCARD_USERNAME = disconnect(ReasonCode.BadUserNameOrPassword, 'bad_credentials')
const SERVER_TOPIC_WILL = disconnect(ReasonCode.TopicNameInvalid, 'invalid_topic')
/** A publish to a server topic is refused, not the client: 5.0 PUBACK/PUBREC 0x90, 3.1.1 dropped. */
const SERVER_TOPIC = reject(ReasonCode.TopicNameInvalid, 'invalid_topic')
// Too deep: Mosquitto 2.0 closes the client itself (a topic: protocol error; a filter: malformed).
const TOO_DEEP_TOPIC = disconnect(ReasonCode.ProtocolError, 'invalid_topic')
const TOO_DEEP_FILTER = disconnect(ReasonCode.MalformedPacket, 'invalid_topic_filter')

const DOLLAR = 0x24
const SLASH = 0x2f
const SYS = Buffer.from('$SYS')
const SYS_STRING = '$SYS'

function hasWildcard(s: string): boolean {
  return s.includes('+') || s.includes('#')
}

function levelsOver(s: string, max: number): boolean {
  let slashes = 0
  for (let i = s.indexOf('/'); i !== -1; i = s.indexOf('/', i + 1)) if (++slashes >= max) return true
  return false
}

/** User Properties a client's 5.0 property block may carry under `config` (cve-2021-41039: MAX_USER_PROPERTIES, or no cap). */
export function userPropertyCap(config: MoatConfig): number {
  return (config.virtualPatches ?? ALL_VIRTUAL_PATCHES)['cve-2021-41039'] ? MAX_USER_PROPERTIES : Infinity
}

/** Every patch on: the default. */
export const ALL_VIRTUAL_PATCHES: VirtualPatchesConfig = Object.freeze({
  'cve-2017-7650': true, 'cve-2018-12543': true, 'cve-2019-11779': true, 'cve-2021-41039': true,
})

function isSysTopic(frame: Buffer, start: number, end: number): boolean {
  return end - start >= 4 && frame.compare(SYS, 0, 4, start, start + 4) === 0
}

export class VirtualPatchCheck implements Check {
  readonly name = 'virtual_patches'
  private readonly wildcardIds: boolean
  private readonly serverTopics: boolean
  private readonly maxLevels: number

  constructor(patches: VirtualPatchesConfig) {
    this.wildcardIds = patches['cve-2017-7650']
    this.serverTopics = patches['cve-2018-12543']
    // Off: no topic is too deep (a topic of 65,535 bytes has fewer separators than this).
    this.maxLevels = patches['cve-2019-11779'] ? MAX_TOPIC_LEVELS : 0x10000
  }

  onConnect(connect: IConnectPacket): Verdict {
    if (this.wildcardIds) {
      if (hasWildcard(connect.clientId)) return WILDCARD_CLIENT_ID
      if (connect.username !== undefined && hasWildcard(connect.username)) return WILDCARD_USERNAME
    }
    const will = connect.will
    if (will && ((this.serverTopics && will.topic.charCodeAt(0) === DOLLAR && !will.topic.startsWith(SYS_STRING)) || levelsOver(will.topic, this.maxLevels))) return SERVER_TOPIC_WILL
    return FORWARD
  }

  onPublish(p: PublishView): Verdict {
    const frame = p.frame
    const start = p.topicStart
    const end = p.topicEnd
    const maxLevels = this.maxLevels
    if (end === start) {
      // An alias-only 5.0 publish: the protocol check resolved its topic.
      const topic = p.topic
      if (this.serverTopics && topic.charCodeAt(0) === DOLLAR && !topic.startsWith(SYS_STRING)) return SERVER_TOPIC
      return levelsOver(topic, maxLevels) ? TOO_DEEP_TOPIC : FORWARD
    }
    if (this.serverTopics && frame[start] === DOLLAR && !isSysTopic(frame, start, end)) return SERVER_TOPIC
    if (end - start < maxLevels) return FORWARD
    let slashes = 0
    for (let i = start; i < end; i++) if (frame[i] === SLASH && ++slashes >= maxLevels) return TOO_DEEP_TOPIC
    return FORWARD
  }

  onSubscribe(subscription: ISubscription): Verdict {
    return levelsOver(subscription.topic, this.maxLevels) ? TOO_DEEP_FILTER : FORWARD
  }

  onUnsubscribe(filter: string): Verdict {
    return levelsOver(filter, this.maxLevels) ? TOO_DEEP_FILTER : FORWARD
  }
}

export const virtualPatchCheck: CheckFactory = {
  name: 'virtual_patches',
  create: (config) => {
    const patches = config.virtualPatches ?? ALL_VIRTUAL_PATCHES
    if (!patches['cve-2017-7650'] && !patches['cve-2018-12543'] && !patches['cve-2019-11779']) return null
    return sharedCheck(new VirtualPatchCheck(patches))
  },
}
