/**
 * Payload caps: a PUBLISH whose payload is larger than the cap for its topic is refused and the
 * client closed (5.0: DISCONNECT 0x95, Packet too large; 3.1.1: the connection closes), before
 * anything reaches the broker. The cap is that of the first `limits.payload` rule whose filter
 * matches the topic, else `limits.maxPayload`. (The whole-packet cap, `maxPacketSize`, is enforced
 * earlier, by the Framer, from the fixed header alone.)
 */
import type { MoatConfig, PayloadRule } from '../config/types.js'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import { topicMatches } from '../protocol/topic-match.js'
import type { Check, CheckFactory } from './check.js'
import { disconnect, FORWARD, type Verdict } from './verdict.js'

const TOO_LARGE = disconnect(ReasonCode.PacketTooLarge, 'payload_too_large')

export class SizeCheck implements Check {
  readonly name = 'size'
  private readonly rules: readonly PayloadRule[]
  /** Cap when no rule matches; Infinity when only maxPacketSize applies. */
  private readonly fallback: number

  constructor(rules: readonly PayloadRule[], fallback: number) {
    this.rules = rules
    this.fallback = fallback
  }

  onPublish(p: PublishView): Verdict {
    const length = p.payloadLength
    const rules = this.rules
    if (rules.length === 0) return length > this.fallback ? TOO_LARGE : FORWARD
    const topic = p.topic
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!
      if (topicMatches(rule.topic, topic)) return length > rule.max ? TOO_LARGE : FORWARD
    }
    return length > this.fallback ? TOO_LARGE : FORWARD
  }
}

export const sizeCheck: CheckFactory = {
  name: 'size',
  create(config: MoatConfig) {
    const { payload, maxPayload } = config.limits
    if (payload.length === 0 && maxPayload === null) return null
    const check = new SizeCheck(payload, maxPayload ?? Infinity) // stateless: one instance serves every session
    return () => check
  },
}
