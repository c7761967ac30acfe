/**
 * Recent ACL decisions of one session and action: the rule index each topic got. A device publishes
 * to its own few topics again and again, and for a session the decision depends on the topic alone
 * (its rules, selectors and placeholders are bound once: acl/session-acl.ts), so a topic seen a
 * moment ago needs no trie walk and no placeholder match. A subscriber of a wildcard receives from
 * many topics; a miss then costs a hash and one comparison before the walk.
 *
 * A topic is found by whole-string equality in the slot its hash picks, never by prefix. Bounded:
 * START_SLOTS slots at first, growing once to MAX_SLOTS for a session that keeps missing; topics
 * over MAX_TOPIC_LENGTH characters are decided every time. A policy reload binds new rules to the
 * session, and with them an empty memory.
 */
import { fnv1aString } from '../protocol/fnv.js'

export const START_SLOTS = 4
export const MAX_SLOTS = 64
/** Misses after which a small memory grows. */
export const GROW_AFTER_MISSES = 32
const MAX_TOPIC_LENGTH = 128

/** Returned by `find` for a topic not remembered. */
export const NOT_REMEMBERED = -1

export class RecentDecisions {
  private topics: Array<string | null> = new Array<string | null>(START_SLOTS).fill(null)
  private indices = new Int32Array(START_SLOTS)
  private mask = START_SLOTS - 1
  private misses = 0
  /** The slot of the last `find` (`remember` stores there). */
  private slot = 0

  /** Slots this memory has now (START_SLOTS or MAX_SLOTS). */
  get size(): number {
    return this.mask + 1
  }

  /** The rule index remembered for `topic`, or NOT_REMEMBERED. */
  find(topic: string): number {
    if (topic.length > MAX_TOPIC_LENGTH) return NOT_REMEMBERED
    const slot = (this.slot = fnv1aString(topic) & this.mask)
    return this.topics[slot] === topic ? this.indices[slot]! : NOT_REMEMBERED
  }

  /** Remembers `index` for `topic`, which the last `find` did not find, in place of its slot's. */
  remember(topic: string, index: number): void {
    if (topic.length > MAX_TOPIC_LENGTH) return
    let slot = this.slot
    if (++this.misses === GROW_AFTER_MISSES && this.mask < MAX_SLOTS - 1) {
      this.topics = new Array<string | null>(MAX_SLOTS).fill(null)
      this.indices = new Int32Array(MAX_SLOTS)
      this.mask = MAX_SLOTS - 1
      slot = fnv1aString(topic) & this.mask
    }
    this.topics[slot] = topic
    this.indices[slot] = index
  }
}
