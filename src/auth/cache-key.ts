/**
 * The key under which an auth answer is cached: SHA-256 over a secret drawn at start followed by
 * the request fields the answer depends on (the password among them). The cache never holds a
 * password, nor a hash of one that a guess could be tested against without the secret.
 *
 * - The secret lives only in a Buffer, outside V8's heap: a heap snapshot (which has every string)
 *   does not hold it. The fields are wiped from the scratch memory once hashed.
 * - A secret prefix, not HMAC: the digests never leave the process (they are map keys), so there is
 *   nothing for SHA-256's length extension to extend. One one-shot `crypto.hash` call per CONNECT
 *   costs measurably less than `createHmac`, which builds a stream and a native object per call
 *   (bench/README.md, "The cached auth answer").
 */
import { hash, randomBytes } from 'node:crypto'

const SECRET_BYTES = 32
/** Fields up to this many UTF-8 bytes are hashed in the scratch memory; longer ones in a buffer of their own. */
const SCRATCH_BYTES = 4096

export class CacheKeyHasher {
  /** The secret, then room for the fields. */
  private readonly scratch = Buffer.alloc(SECRET_BYTES + SCRATCH_BYTES)

  /** `secret`: for tests; by default one is drawn, and its only copy is the scratch memory's. */
  constructor(secret?: Buffer) {
    const drawn = secret ?? randomBytes(SECRET_BYTES)
    if (drawn.length !== SECRET_BYTES) throw new Error(`a cache key secret is ${SECRET_BYTES} bytes`)
    drawn.copy(this.scratch, 0)
    if (secret === undefined) drawn.fill(0)
  }

  /** The cache key of `fields` (the request fields, as one string), base64. */
  keyOf(fields: string): string {
    // A UTF-16 unit is at most 3 bytes of UTF-8: what passes this test always fits.
    if (fields.length * 3 <= SCRATCH_BYTES) return digestIn(this.scratch, fields)
    const own = Buffer.alloc(SECRET_BYTES + Buffer.byteLength(fields))
    this.scratch.copy(own, 0, 0, SECRET_BYTES)
    const key = digestIn(own, fields)
    own.fill(0, 0, SECRET_BYTES)
    return key
  }
}

/** SHA-256 of `buffer`'s secret followed by `fields`, written after it and wiped once hashed. */
function digestIn(buffer: Buffer, fields: string): string {
  const end = SECRET_BYTES + buffer.write(fields, SECRET_BYTES, 'utf8')
  const key = hash('sha256', buffer.subarray(0, end), 'base64')
  buffer.fill(0, SECRET_BYTES, end)
  return key
}
