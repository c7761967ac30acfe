/**
 * What checks may know about a client: its protocol, identity and negotiated limits.
 * One per session; every field is initialised here so the object keeps one shape.
 */
import type { ClientCertificate, ConnInfo, Transport } from './conn-info.js'

/** The empty `subscriptions` every session starts with: shared, so it refuses to hold anything. */
class NoSubscriptions extends Map<string, number> {
  override set(): this {
    throw new Error('SessionState.subscriptions: add with grant()')
  }
}
const NO_SUBSCRIPTIONS: Map<string, number> = new NoSubscriptions()
const NO_GROUPS: readonly string[] = Object.freeze([])

export class SessionState {
  /** Session number, unique within the process (logs). */
  readonly id: number
  readonly listener: string
  /** The client's real address: from the PROXY protocol header where the listener reads one. */
  readonly remoteAddress: string
  readonly remotePort: number
  readonly transport: Transport
  readonly tlsVersion: string | null
  /** The verified client certificate (mutual TLS), null otherwise. */
  readonly certificate: ClientCertificate | null
  /** Protocol level from CONNECT: 3 (3.1), 4 (3.1.1) or 5 (5.0); 0 before CONNECT. */
  version = 0
  clientId = ''
  /**
   * The identity checks and logs use: the CONNECT user name, or the one an auth backend established
   * (a certificate's CN, a JWT subject). Null for an anonymous client.
   */
  username: string | null = null
  /** Attributes an auth backend vouched for (JWT claims, HTTP backend answer): ACL `{claims.NAME}`. */
  claims: Readonly<Record<string, string>> | null = null
  /** Groups an auth backend placed the client in (ACL `groups` selector). */
  groups: readonly string[] = NO_GROUPS
  /** Which auth backend accepted the client ('anonymous' when none was needed); null before. */
  authenticatedBy: string | null = null
  keepalive = 0
  cleanStart = true
  /**
   * Highest topic alias the client may use towards the broker: the broker's Topic Alias Maximum
   * from its CONNACK (5.0; 0 = aliases not allowed) [MQTT-3.2.2-17].
   */
  topicAliasMaximum = 0
  /**
   * Topics the client bound to aliases (5.0), index = alias. Protocol state, so it lives here and
   * survives a policy reload that rebuilds the session's checks.
   */
  clientAliases: string[] | null = null
  /** Topics the broker bound to aliases in its deliveries (5.0), index = alias. */
  brokerAliases: string[] | null = null
  /** The client's CONNECT allowed the broker to use topic aliases (5.0 Topic Alias Maximum > 0). */
  clientAcceptsAliases = false
  /** True once the broker accepted the CONNECT. */
  connected = false
  /** Name of the policy rule behind the last refusal, for the log line ('' when none). */
  lastRule = ''
  /**
   * Filters the broker granted this client (as subscribed, `$share/…` included) → requested QoS:
   * re-judged when the policy changes. Bounded by the broker's grants of the client's SUBSCRIBEs.
   * A shared empty map until the first grant (an idle session holds no Map); add with grant().
   */
  subscriptions: Map<string, number> = NO_SUBSCRIPTIONS

  /** Records a filter the broker granted. */
  grant(filter: string, qos: number): void {
    (this.subscriptions === NO_SUBSCRIPTIONS ? (this.subscriptions = new Map()) : this.subscriptions).set(filter, qos)
  }

  /** Records an alias binding of a publish that was forwarded [MQTT-3.3.2-12]. */
  bindClientAlias(alias: number, topic: string): void {
    (this.clientAliases ?? (this.clientAliases = []))[alias] = topic
  }
  /** Set by a check that returns a Throttle verdict: when (nowMs() clock) the packet may be retried. */
  throttleUntil = 0
  /**
   * Acknowledgements the client owes the broker: one per QoS 1/2 delivery, broker PUBREC and broker
   * PUBREL passed on to it. The rates let that many acks through uncounted (checks/rate.ts).
   */
  acksOwed = 0
  /**
   * Quota state (checks/quota.ts): topic filters held and QoS 1/2 packet ids awaiting the broker's
   * ack. Here, not in the check, so a policy reload that rebuilds the checks keeps the counts.
   */
  quotaFilters: Set<string> | null = null
  inflight: Set<number> | null = null

  constructor(id: number, conn: ConnInfo) {
    this.id = id
    this.listener = conn.listener
    this.remoteAddress = conn.remoteAddress
    this.remotePort = conn.remotePort
    this.transport = conn.transport
    this.tlsVersion = conn.tlsVersion
    this.certificate = conn.certificate
  }
}
