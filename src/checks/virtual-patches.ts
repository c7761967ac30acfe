/**
 * Virtual patches: the known triggers of broker CVEs that the protocol rules alone would let
 * through, refused before they reach the broker (docs/virtual-patching.md has the table of CVEs,
 * what Moat does about each, and the test that shows it). Always on: each refuses only what no
 * honest client needs.
 *
 * - A client id or user name holding an MQTT wildcard (+ or #): where a broker's ACL patterns
 *   substitute them (%c, %u), they widen into wildcards (Mosquitto CVE-2017-7650).
 * - A topic name beginning with '$' in a client PUBLISH or a will: such topics belong to the server
 *   ([MQTT-4.7.2-1]: the server SHOULD prevent clients from using them); Mosquitto 1.5–1.5.2
 *   asserted and exited on one that was not $SYS (CVE-2018-12543).
 * - A topic or topic filter of more than MAX_TOPIC_LEVELS levels: Mosquitto 1.5.0–1.6.5 overflowed
 *   its stack on a SUBSCRIBE of about 65,400 '/' (CVE-2019-11779).
 *
 * One more is applied where 5.0 properties are read, not here: more than MAX_USER_PROPERTIES User
 * Properties in one block (CVE-2021-41039: protocol/properties.ts, protocol/publish.ts), refused
 * with Quota Exceeded by the session.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { sharedCheck, type Check, type CheckFactory } from './check.js'
import { disconnect, FORWARD, reject, type Verdict } from './verdict.js'

/** Topic levels a topic name or filter may have (Mosquitto's own later limit is of this order). */
export const MAX_TOPIC_LEVELS = 200

const WILDCARD_CLIENT_ID = disconnect(ReasonCode.ClientIdentifierNotValid, 'invalid_client_id')
const WILDCARD_USERNAME = disconnect(ReasonCode.BadUserNameOrPassword, 'bad_credentials')
const SERVER_TOPIC_WILL = disconnect(ReasonCode.TopicNameInvalid, 'invalid_topic')
/** A publish to a server topic is refused, not the client: 5.0 PUBACK/PUBREC 0x90, 3.1.1 dropped. */
const SERVER_TOPIC = reject(ReasonCode.TopicNameInvalid, 'invalid_topic')
const TOO_DEEP_TOPIC = reject(ReasonCode.TopicNameInvalid, 'invalid_topic')
const TOO_DEEP_FILTER = reject(ReasonCode.TopicFilterInvalid, 'invalid_topic_filter')
const TOO_DEEP_UNSUBSCRIBE = disconnect(ReasonCode.TopicFilterInvalid, 'invalid_topic_filter')

const DOLLAR = 0x24
const SLASH = 0x2f

function hasWildcard(s: string): boolean {
  return s.includes('+') || s.includes('#')
}

function levelsOver(s: string, max: number): boolean {
  let slashes = 0
  for (let i = s.indexOf('/'); i !== -1; i = s.indexOf('/', i + 1)) if (++slashes >= max) return true
  return false
}

export class VirtualPatchCheck implements Check {
  readonly name = 'virtual_patches'

  onConnect(connect: IConnectPacket): Verdict {
    if (hasWildcard(connect.clientId)) return WILDCARD_CLIENT_ID
    if (connect.username !== undefined && hasWildcard(connect.username)) return WILDCARD_USERNAME
    const will = connect.will
    if (will && (will.topic.charCodeAt(0) === DOLLAR || levelsOver(will.topic, MAX_TOPIC_LEVELS))) return SERVER_TOPIC_WILL
    return FORWARD
  }

  onPublish(p: PublishView): Verdict {
    const frame = p.frame
    const start = p.topicStart
    const end = p.topicEnd
    if (end === start) {
      // An alias-only 5.0 publish: the protocol check resolved its topic.
      const topic = p.topic
      if (topic.charCodeAt(0) === DOLLAR) return SERVER_TOPIC
      return levelsOver(topic, MAX_TOPIC_LEVELS) ? TOO_DEEP_TOPIC : FORWARD
    }
    if (frame[start] === DOLLAR) return SERVER_TOPIC
    if (end - start < MAX_TOPIC_LEVELS) return FORWARD
    let slashes = 0
    for (let i = start; i < end; i++) if (frame[i] === SLASH && ++slashes >= MAX_TOPIC_LEVELS) return TOO_DEEP_TOPIC
    return FORWARD
  }

  onSubscribe(subscription: ISubscription): Verdict {
    return levelsOver(subscription.topic, MAX_TOPIC_LEVELS) ? TOO_DEEP_FILTER : FORWARD
  }

  onUnsubscribe(filter: string): Verdict {
    return levelsOver(filter, MAX_TOPIC_LEVELS) ? TOO_DEEP_UNSUBSCRIBE : FORWARD
  }
}

export const virtualPatchCheck: CheckFactory = {
  name: 'virtual_patches',
  create: () => sharedCheck(new VirtualPatchCheck()),
}
