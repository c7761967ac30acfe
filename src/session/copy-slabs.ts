/**
 * Where a RunWriter copies the lent runs it cannot write at once (behind a queue, or to a TLS
 * socket, which has no descriptor to write to in place): packed one after another into 64 KiB slabs
 * that are used again once the socket has written what they hold.
 *
 * Why: a copy made with Buffer.allocUnsafe is a new allocation outside V8's heap whenever it is
 * larger than Buffer's small pool takes, and the socket keeps it until it is written. Under
 * sustained backpressure (a subscriber that reads slower than the broker delivers) those copies
 * outlive young-generation collections, and the external memory they add up to brings full
 * collections: bench/README.md has the figures for a TLS subscriber.
 *
 * Only for a net.Socket (TCP or TLS): its write callback comes once the bytes are in the kernel (a
 * TLS socket's once they are encrypted and written), so their place in the slab is free then. A
 * WebSocket stream calls back before ws has sent the bytes: RunWriter copies for it as before.
 *
 * Memory: what is in flight, rounded up to slabs, plus at most one spare slab, and nothing once
 * the socket has written everything (the slabs are dropped then: an idle session holds none).
 * Copies of at most SMALL_COPY bytes stay with Buffer's pool, which serves them from shared slabs.
 */
import { poisonLentReads } from '../net/lent-reads.js'

const SLAB_SIZE = 64 * 1024
/** Copies up to this size are left to Buffer.allocUnsafe (its pool takes up to 4 KiB). */
const SMALL_COPY = 4 * 1024
const POISON = 0xee

class Slab {
  readonly buf = Buffer.allocUnsafeSlow(SLAB_SIZE)
  used = 0
  /** Copies in this slab not yet written. */
  pending = 0
}

export class CopySlabs {
  /** The slab new copies go into. */
  private current: Slab | null = null
  private spare: Slab | null = null
  /** The slab of each copy handed to a write, in write order (write callbacks come in that order). */
  private readonly inFlight: Slab[] = []
  /** The write callback of every copy: the oldest copy in flight is written. */
  readonly written: () => void = () => this.onWritten()

  /** Whether a copy of `length` bytes is made here (else Buffer.allocUnsafe is the cheaper place). */
  static takes(length: number): boolean {
    return length > SMALL_COPY && length <= SLAB_SIZE
  }

  /** `buf[start, end)` copied into a slab; pass `written` as the write's callback. */
  copy(buf: Buffer, start: number, end: number): Buffer {
    const length = end - start
    let slab = this.current
    if (slab === null || SLAB_SIZE - slab.used < length) {
      slab = this.spare ?? new Slab()
      this.spare = null
      this.current = slab
    }
    const at = slab.used
    buf.copy(slab.buf, at, start, end)
    slab.used = at + length
    slab.pending += 1
    this.inFlight.push(slab)
    return slab.buf.subarray(at, at + length)
  }

  private onWritten(): void {
    const slab = this.inFlight.shift()
    if (slab === undefined) return
    slab.pending -= 1
    if (slab.pending > 0) return
    if (poisonLentReads) slab.buf.fill(POISON, 0, slab.used)
    slab.used = 0
    if (this.inFlight.length === 0) {
      // Everything is written: hold no memory while the socket is not backed up.
      this.current = null
      this.spare = null
    } else if (slab !== this.current) {
      this.spare = slab
    }
  }

  /** The socket is gone: copies in flight will not be reused (their callbacks may never come). */
  drop(): void {
    this.current = null
    this.spare = null
    this.inFlight.length = 0
  }
}
