/**
 * The TLS 1.2 session-id cache of one listener in one process, for clients that resume by session
 * id instead of by ticket (TLS stacks built without tickets, `openssl s_client -no_ticket`). Node
 * hands every new session to `newSession` and asks `resumeSession` for each session id a client
 * offers; this keeps them.
 *
 * Bounded whatever clients do: at most `max` entries of at most MAX_SESSION_BYTES each, the oldest
 * dropped first, none resumed past the lifetime. Only a completed full handshake adds an entry, and
 * a lookup of an unknown id (any client can send one) adds nothing.
 */

/** A session is a few hundred bytes, more with the client's certificate; a larger one is not kept. */
export const MAX_SESSION_BYTES = 8192

/** The protocol version OpenSSL writes into a serialized session. */
const TLS_1_2 = 0x0303

/**
 * The protocol version of a DER-encoded OpenSSL session (SEQUENCE { INTEGER 1, INTEGER version, … }),
 * or 0 when it does not read as one.
 */
export function sessionVersion(der: Buffer): number {
  if (der.length < 12 || der[0] !== 0x30) return 0
  const lengthBytes = der[1]! < 0x80 ? 0 : der[1]! & 0x7f
  const at = 2 + lengthBytes
  if (lengthBytes > 2 || der[at] !== 0x02 || der[at + 1] !== 0x01 || der[at + 2] !== 0x01) return 0
  if (der[at + 3] !== 0x02 || der[at + 4] !== 0x02) return 0
  return der.readUInt16BE(at + 5)
}

interface Entry {
  readonly data: Buffer
  readonly until: number
}

export class SessionCache {
  readonly max: number
  readonly lifetimeMs: number
  /** Insertion order is age: the first key is the oldest. */
  private readonly entries = new Map<string, Entry>()

  constructor(max: number, lifetimeMs: number) {
    this.max = max
    this.lifetimeMs = lifetimeMs
  }

  get size(): number {
    return this.entries.size
  }

  /**
   * Keeps a new session. TLS 1.3 sessions are left out: Node reports them too, but a TLS 1.3
   * client resumes from its ticket, never by session id.
   */
  store(id: Buffer, data: Buffer): void {
    if (this.max === 0 || id.length === 0 || data.length > MAX_SESSION_BYTES || sessionVersion(data) !== TLS_1_2) return
    const key = id.toString('latin1')
    this.entries.delete(key)
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(key, { data, until: Date.now() + this.lifetimeMs })
  }

  /** The session a client asks to resume, or null (unknown, or past its lifetime: then forgotten). */
  lookup(id: Buffer): Buffer | null {
    if (this.entries.size === 0) return null
    const key = id.toString('latin1')
    const entry = this.entries.get(key)
    if (entry === undefined) return null
    if (entry.until <= Date.now()) {
      this.entries.delete(key)
      return null
    }
    return entry.data
  }
}
