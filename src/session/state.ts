/**
 * What checks may know about a client: its protocol, identity and negotiated limits.
 * One per session; every field is initialised here so the object keeps one shape (STYLE H7).
 */
export class SessionState {
  /** Session number, unique within the process (logs). */
  readonly id: number
  readonly listener: string
  readonly remoteAddress: string
  readonly remotePort: number
  /** Protocol level from CONNECT: 3 (3.1), 4 (3.1.1) or 5 (5.0); 0 before CONNECT. */
  version = 0
  clientId = ''
  username: string | null = null
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
  /** True once the broker accepted the CONNECT. */
  connected = false

  constructor(id: number, listener: string, remoteAddress: string, remotePort: number) {
    this.id = id
    this.listener = listener
    this.remoteAddress = remoteAddress
    this.remotePort = remotePort
  }
}
