/**
 * Rate limits as token buckets (limits/token-bucket.ts): per connection (packets, messages, bytes),
 * per user name across that user's connections, and per topic pattern. Every packet a client sends
 * after CONNECT counts towards the packet and byte rates, except the acknowledgements (PUBACK, PUBREC,
 * PUBREL, PUBCOMP) that answer a packet the broker sent (SessionState.acksOwed): the broker's
 * in-flight window bounds those, and holding them back would stall the client's deliveries and
 * queue its PINGREQs behind them. An ack that answers nothing counts like any other packet.
 * PUBLISH also counts towards the message rate and the topic rules it matches. A packet passes only
 * when every bucket it touches has room, and then is charged to all of them, so a refused packet
 * costs nothing.
 *
 * What an excess does is per rule: `throttle` (Throttle verdict: the session stops reading the
 * client until the bucket refills, then checks the same packet again: nothing is lost), `drop`
 * (PUBLISH is refused: counted, 5.0 QoS 1/2 get PUBACK/PUBREC 0x97; any other packet type cannot be
 * dropped without breaking the client's session, so it is closed), `disconnect` (5.0 DISCONNECT 0x96).
 * When several buckets are over, the strongest action wins (disconnect > drop > throttle).
 *
 * Per-user buckets live in an lru-cache owned by the compiled policy (bounded; a reload starts
 * them afresh); per-session buckets live in the Check instance. With a fleet (`cluster.redis`),
 * the per-user buckets are leased from fleet-wide budgets (limits/budget-leases.ts): the same
 * local decrement per packet, their credits granted by a renewal loop off the packet path.
 */
import { LRUCache } from 'lru-cache'
import type { LimitsConfig, MoatConfig } from '../config/types.js'
import type { PublishView } from '../protocol/publish.js'
import { PacketType } from '../protocol/packet-type.js'
import { ReasonCode } from '../protocol/reason.js'
import { topicMatches } from '../protocol/topic-match.js'
import type { SessionState } from '../client/session-state.js'
import type { LeaseTable, UserBudgetLeases } from '../limits/budget-leases.js'
import { BucketSpec, ExcessAction, excessCode, nowMs, tickNowMs, TokenBucket, type ExcessActionCode } from '../limits/token-bucket.js'
import type { Check, CheckEnv, CheckFactory } from './check.js'
import { disconnect, FORWARD, reject, throttle, type Verdict } from './verdict.js'

const RATE_DISCONNECT = disconnect(ReasonCode.MessageRateTooHigh, 'rate_limited')
// 0x96 is not a valid PUBACK/PUBREC reason code (MQTT 5.0 section 3.4.2.1; MQTT.js refuses it):
// a dropped QoS 1/2 publish is answered with 0x97, Quota exceeded.
const RATE_DROP = reject(ReasonCode.QuotaExceeded, 'rate_limited')
const RATE_THROTTLE = throttle(ReasonCode.MessageRateTooHigh, 'rate_limited')

interface SpecWithAction {
  readonly spec: BucketSpec
  readonly action: ExcessActionCode
  readonly perByte: boolean
  /** Counts only PUBLISH (the message rate). */
  readonly publishOnly: boolean
  /** Names the rate in a fleet budget's key: p(ackets), m(essages), b(ytes). */
  readonly kind: string
}

interface TopicRule {
  readonly topic: string
  readonly spec: BucketSpec
  readonly action: ExcessActionCode
}

/** The buckets one user name shares across its connections. */
class UserBuckets {
  readonly publish: TokenBucket[]
  readonly other: TokenBucket[]
  constructor(specs: readonly SpecWithAction[], now: number) {
    this.publish = specs.map((s) => new TokenBucket(s.spec, s.action, s.perByte, now))
    this.other = this.publish.filter((_, i) => !specs[i]!.publishOnly)
  }
}

function specs(rates: Pick<LimitsConfig, 'messageRate' | 'byteRate' | 'packetRate'>, burstMs: number, onExcess: LimitsConfig['onExcess']): SpecWithAction[] {
  const action = excessCode(onExcess)
  const out: SpecWithAction[] = []
  if (rates.packetRate !== null) out.push({ spec: new BucketSpec(rates.packetRate, burstMs), action, perByte: false, publishOnly: false, kind: 'p' })
  if (rates.messageRate !== null) out.push({ spec: new BucketSpec(rates.messageRate, burstMs), action, perByte: false, publishOnly: true, kind: 'm' })
  if (rates.byteRate !== null) out.push({ spec: new BucketSpec(rates.byteRate, burstMs), action, perByte: true, publishOnly: false, kind: 'b' })
  return out
}

/** The compiled rate policy of one config generation; shared by that generation's sessions. */
class RatePolicy {
  readonly session: readonly SpecWithAction[]
  readonly user: readonly SpecWithAction[]
  readonly topics: readonly TopicRule[]
  readonly users: LRUCache<string, UserBuckets> | null
  private readonly userKinds: readonly string[]
  private readonly leases: UserBudgetLeases | null
  /** Opened at the first user (a generation never used, such as one a failed reload compiled, opens none). */
  private leaseTable: LeaseTable | null = null

  constructor(limits: LimitsConfig, leases: UserBudgetLeases | null = null) {
    this.session = specs(limits, limits.burstMs, limits.onExcess)
    const u = limits.perUsername
    this.user = u === null ? [] : specs(u, u.burstMs, u.onExcess)
    this.userKinds = this.user.map((s) => s.kind)
    this.leases = leases
    this.users = u === null || this.user.length === 0 ? null : new LRUCache<string, UserBuckets>({
      max: u.trackedUsers,
      dispose: (_buckets, username) => this.leaseTable?.untrack(username, nowMs()),
    })
    this.topics = limits.topics.map((t) => ({ topic: t.topic, spec: new BucketSpec(t.rate, t.burstMs), action: excessCode(t.onExcess) }))
  }

  get isOff(): boolean {
    return this.session.length === 0 && this.users === null && this.topics.length === 0
  }

  userBuckets(username: string, now: number): UserBuckets {
    const users = this.users!
    let buckets = users.get(username)
    if (buckets === undefined) {
      buckets = new UserBuckets(this.user, now)
      users.set(username, buckets)
      if (this.leases !== null) {
        this.leaseTable ??= this.leases.open()
        this.leaseTable.track(username, buckets.publish, this.userKinds, now)
      }
    }
    return buckets
  }
}

const NO_BUCKETS: TokenBucket[] = []
const NO_MATCHES = new Uint8Array(0)

export class RateCheck implements Check {
  readonly name = 'rate'
  private readonly policy: RatePolicy
  /**
   * Buckets a PUBLISH is charged to, and those any other packet is charged to. Made on the
   * session's first packet after CONNECT (a bucket starts full, so one made then decides exactly as
   * one made at CONNECT): an idle session holds none (memory per idle connection).
   */
  private publishBuckets: TokenBucket[] = NO_BUCKETS
  private otherBuckets: TokenBucket[] = NO_BUCKETS
  private topicBuckets: TokenBucket[] = NO_BUCKETS
  /** Which topic rules the current PUBLISH matched (reused: matching is done once per packet). */
  private matched: Uint8Array = NO_MATCHES
  private userPublish: readonly TokenBucket[] = NO_BUCKETS
  private userOther: readonly TokenBucket[] = NO_BUCKETS
  /** False until the first packet: buckets made, the user's shared buckets found. */
  private prepared = false
  // The decision being built for the current packet (fields, not a per-packet object).
  private worst: ExcessActionCode = ExcessAction.None
  private wait = 0

  constructor(policy: RatePolicy) {
    this.policy = policy
  }

  /**
   * The session's buckets, and the user's shared ones, once the identity is settled (first packet
   * after CONNECT).
   */
  private prepare(s: SessionState, now: number): void {
    this.prepared = true
    const policy = this.policy
    if (policy.session.length > 0) {
      this.publishBuckets = policy.session.map((b) => new TokenBucket(b.spec, b.action, b.perByte, now))
      this.otherBuckets = this.publishBuckets.filter((_, i) => !policy.session[i]!.publishOnly).slice() // exact fit
    }
    if (policy.topics.length > 0) {
      this.topicBuckets = policy.topics.map((t) => new TokenBucket(t.spec, t.action, false, now))
      this.matched = new Uint8Array(policy.topics.length)
    }
    if (policy.users === null || s.username === null) return
    const buckets = policy.userBuckets(s.username, now)
    this.userPublish = buckets.publish
    this.userOther = buckets.other
  }

  onPacket(type: number, size: number, s: SessionState): Verdict {
    // PUBACK 4, PUBREC 5, PUBREL 6, PUBCOMP 7 answering what the broker sent: not counted (see the
    // header). Acks beyond what is owed answer nothing and count like any other packet.
    if (type >= PacketType.Puback && type <= PacketType.Pubcomp && s.acksOwed > 0) {
      s.acksOwed -= 1
      return FORWARD
    }
    const now = tickNowMs()
    if (!this.prepared) this.prepare(s, now)
    this.worst = ExcessAction.None
    this.wait = 0
    this.consider(this.otherBuckets, size, now)
    this.consider(this.userOther, size, now)
    if (this.worst === ExcessAction.None) {
      this.charge(this.otherBuckets, size)
      this.charge(this.userOther, size)
      return FORWARD
    }
    // Only a PUBLISH can be dropped without breaking the client's session (an unanswered
    // SUBSCRIBE or PINGREQ would): any other packet over a `drop` limit closes the client.
    if (this.worst === ExcessAction.Drop) return RATE_DISCONNECT
    return this.verdict(s, now)
  }

  onPublish(p: PublishView, s: SessionState): Verdict {
    const now = tickNowMs()
    if (!this.prepared) this.prepare(s, now)
    const size = p.frameLength
    this.worst = ExcessAction.None
    this.wait = 0
    this.consider(this.publishBuckets, size, now)
    this.consider(this.userPublish, size, now)
    const rules = this.policy.topics
    if (rules.length > 0) {
      const topic = p.topic
      const matched = this.matched
      for (let i = 0; i < rules.length; i++) {
        const hit = topicMatches(rules[i]!.topic, topic)
        matched[i] = hit ? 1 : 0
        if (hit) this.considerOne(this.topicBuckets[i]!, 1, now)
      }
    }
    if (this.worst !== ExcessAction.None) return this.verdict(s, now)
    this.charge(this.publishBuckets, size)
    this.charge(this.userPublish, size)
    const matched = this.matched
    for (let i = 0; i < rules.length; i++) {
      if (matched[i] === 1) this.topicBuckets[i]!.take(1)
    }
    return FORWARD
  }

  private verdict(s: SessionState, now: number): Verdict {
    if (this.worst === ExcessAction.Disconnect) return RATE_DISCONNECT
    if (this.worst === ExcessAction.Drop) return RATE_DROP
    s.throttleUntil = now + this.wait
    return RATE_THROTTLE
  }

  private consider(buckets: readonly TokenBucket[], size: number, now: number): void {
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!
      this.considerOne(b, b.perByte ? size : 1, now)
    }
  }

  private considerOne(b: TokenBucket, units: number, now: number): void {
    const wait = b.waitFor(units, now)
    if (wait === 0) return
    if (b.action > this.worst) this.worst = b.action
    if (b.action === ExcessAction.Throttle && wait > this.wait) this.wait = wait
  }

  private charge(buckets: readonly TokenBucket[], size: number): void {
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!
      b.take(b.perByte ? size : 1)
    }
  }
}

export const rateCheck: CheckFactory = {
  name: 'rate',
  create(config: MoatConfig, env: CheckEnv) {
    const policy = new RatePolicy(config.limits, env.userBudgets ?? null)
    if (policy.isOff) return null
    return () => new RateCheck(policy)
  },
}
