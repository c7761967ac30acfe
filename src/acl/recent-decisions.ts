/**
 * The last few ACL decisions of one session and action: the rule index each topic got. A device
 * publishes to its own few topics again and again, and for a session the decision depends on the
 * topic alone (its rules, selectors and placeholders are bound once: acl/session-acl.ts), so a
 * topic seen a moment ago needs no trie walk and no placeholder match.
 *
 * A topic is found by whole-string equality, never by prefix. Bounded: SLOTS topics of at most
 * MAX_TOPIC_LENGTH characters are kept (longer ones are decided every time). A policy reload binds
 * new rules to the session, and with them an empty memory.
 */

const SLOTS = 4
const MAX_TOPIC_LENGTH = 128

/** Returned by `find` for a topic not remembered. */
export const NOT_REMEMBERED = -1

export class RecentDecisions {
  private readonly topics: Array<string | null> = Array.from({ length: SLOTS }, () => null)
  private readonly indices = new Int32Array(SLOTS)
  private next = 0

  /** The rule index remembered for `topic`, or NOT_REMEMBERED. */
  find(topic: string): number {
    const topics = this.topics
    for (let slot = 0; slot < SLOTS; slot++) {
      if (topics[slot] === topic) return this.indices[slot]!
    }
    return NOT_REMEMBERED
  }

  /** Remembers `index` for `topic`, in place of the oldest. */
  remember(topic: string, index: number): void {
    if (topic.length > MAX_TOPIC_LENGTH) return
    const slot = this.next
    this.next = (slot + 1) % SLOTS
    this.topics[slot] = topic
    this.indices[slot] = index
  }
}
