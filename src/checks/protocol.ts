/**
 * Protocol validation: the first check of every chain. Rules on decoded packets; the framing rules
 * that come before any decoding (first packet, reserved flags, forbidden types, size) live in the
 * session, and the byte-level rules of PUBLISH in protocol/publish.ts.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import { ReasonCode } from '../protocol/reason.js'
import { checkClientId, checkTopicFilter, checkTopicNameString } from '../protocol/validate.js'
import type { PublishView } from '../protocol/publish.js'
import type { SessionState } from '../client/session-state.js'
import { sharedCheck, type Check, type CheckFactory } from './check.js'
import { disconnect, FORWARD, type Verdict } from './verdict.js'

const INVALID_CLIENT_ID = disconnect(ReasonCode.ClientIdentifierNotValid, 'invalid_client_id')
const MALFORMED = disconnect(ReasonCode.MalformedPacket, 'malformed_packet')
const PROTOCOL_ERROR = disconnect(ReasonCode.ProtocolError, 'protocol_error')
// A will topic that is not a topic name: a protocol error to the broker, which closes without CONNACK.
const INVALID_WILL_TOPIC = disconnect(ReasonCode.ProtocolError, 'invalid_topic')
const INVALID_FILTER = disconnect(ReasonCode.TopicFilterInvalid, 'invalid_topic_filter')
const ALIAS_INVALID = disconnect(ReasonCode.TopicAliasInvalid, 'topic_alias_invalid')

function faultVerdict(code: number, otherwise: Verdict): Verdict {
  return code === ReasonCode.MalformedPacket ? MALFORMED : otherwise
}

export class ProtocolCheck implements Check {
  readonly name = 'protocol'

  onConnect(connect: IConnectPacket): Verdict {
    const level = connect.protocolVersion ?? 4
    const idFault = checkClientId(connect.clientId, level)
    if (idFault !== 0) return faultVerdict(idFault, INVALID_CLIENT_ID)
    const will = connect.will
    if (will) {
      // The Will Topic MUST be a UTF-8 Encoded String [MQTT-3.1.3-11] and a Topic Name: no wildcards.
      const topicFault = checkTopicNameString(will.topic)
      if (topicFault !== 0) return faultVerdict(topicFault, INVALID_WILL_TOPIC)
      // If the Will Flag is set, Will QoS may be 0, 1 or 2; 3 is malformed [MQTT-3.1.2-14].
      if ((will.qos ?? 0) > 2) return MALFORMED
    }
    // A 3.1.1 client that sends a password must also send a user name [MQTT-3.1.2-22].
    if (level < 5 && connect.password !== undefined && connect.username === undefined) return PROTOCOL_ERROR
    return FORWARD
  }

  onPublish(p: PublishView, s: SessionState): Verdict {
    const alias = p.topicAlias
    if (alias === 0) return FORWARD
    // A Topic Alias above the broker's Topic Alias Maximum is a protocol error [MQTT-3.3.2-9].
    if (alias > s.topicAliasMaximum) return ALIAS_INVALID
    // A publish with a topic name (re)binds the alias [MQTT-3.3.2-12]: the session records the
    // binding only once the packet is forwarded, so a refused publish cannot rebind it.
    if (p.topicLength > 0) return FORWARD
    const topic = s.clientAliases?.[alias]
    // An alias never bound cannot name a topic: the receiver's mapping is missing [MQTT-3.3.2-10].
    if (topic === undefined) return PROTOCOL_ERROR
    p.topic = topic // later checks see the real topic
    return FORWARD
  }

  onSubscribe(subscription: ISubscription): Verdict {
    const fault = checkTopicFilter(subscription.topic)
    if (fault !== 0) return faultVerdict(fault, INVALID_FILTER)
    // It is a Protocol Error to set the No Local bit to 1 on a Shared Subscription [MQTT-3.8.3-4].
    if (subscription.nl === true && subscription.topic.startsWith('$share/')) return PROTOCOL_ERROR
    return FORWARD
  }

  onUnsubscribe(filter: string): Verdict {
    const fault = checkTopicFilter(filter)
    return fault === 0 ? FORWARD : faultVerdict(fault, INVALID_FILTER)
  }
}

export const protocolCheck: CheckFactory = {
  name: 'protocol',
  create: () => sharedCheck(new ProtocolCheck()),
}
