/**
 * The topic names one PublishView has seen, as strings: a topic that repeats becomes a string
 * without decoding or allocating one. A device publishes to its own few topics; a subscriber of a
 * wildcard receives from many, so a miss must cost little too.
 *
 * Slots are found by a hash of the topic's bytes (one slot per hash, the newer topic wins), and a
 * topic is found only when every byte equals the cached string's character: a whole-name match,
 * never a prefix. Only ASCII names can match that way (a name whose string is as long as its bytes
 * and equal to them code for code is ASCII), so only they are kept.
 *
 * Bounded: START_SLOTS slots at first; a view that keeps missing (more topics than slots) grows
 * once to MAX_SLOTS. Names over MAX_TOPIC_BYTES are decoded every time. No bytes are copied: a slot
 * holds the string and its hash.
 */
import { fnv1aBytes } from './fnv.js'

/** Slots of a new cache: enough for a device's own topics. */
export const START_SLOTS = 4
/** Slots after growing: a subscriber's or a gateway's topics. */
export const MAX_SLOTS = 64
/** Misses after which a small cache grows. */
export const GROW_AFTER_MISSES = 32
/** Longer names are decoded every time. */
export const MAX_TOPIC_BYTES = 128

export class TopicCache {
  private hashes = new Int32Array(START_SLOTS)
  private strings: Array<string | null> = new Array<string | null>(START_SLOTS).fill(null)
  private mask = START_SLOTS - 1
  private misses = 0
  /** The slot of the last topic handed out. */
  private last = 0

  /** Slots this cache has now (START_SLOTS or MAX_SLOTS). */
  get size(): number {
    return this.mask + 1
  }

  /** The UTF-8 name `frame[start, end)` as a string. */
  decode(frame: Buffer, start: number, end: number): string {
    const length = end - start
    if (length > MAX_TOPIC_BYTES) return frame.toString('utf8', start, end)
    // The topic of the last packet first: a device's one topic costs one comparison, no hash.
    const last = this.strings[this.last] as string | null
    if (last !== null && sameName(last, frame, start, length)) return last
    const hash = fnv1aBytes(frame, start, end)
    const slot = hash & this.mask
    const cached = this.strings[slot] as string | null
    if (cached !== null && this.hashes[slot] === hash && sameName(cached, frame, start, length)) {
      this.last = slot
      return cached
    }
    const topic = frame.toString('utf8', start, end)
    if (topic.length !== length) return topic // not ASCII: could never match by bytes
    if (++this.misses === GROW_AFTER_MISSES && this.mask < MAX_SLOTS - 1) {
      this.hashes = new Int32Array(MAX_SLOTS)
      this.strings = new Array<string | null>(MAX_SLOTS).fill(null)
      this.mask = MAX_SLOTS - 1
    }
    const at = hash & this.mask
    this.hashes[at] = hash
    this.strings[at] = topic
    this.last = at
    return topic
  }
}

/** Whether ASCII `name` is exactly `frame[start, start + length)`. */
function sameName(name: string, frame: Buffer, start: number, length: number): boolean {
  if (name.length !== length) return false
  let i = 0
  while (i < length && name.charCodeAt(i) === frame[start + i]) i++
  return i === length
}
