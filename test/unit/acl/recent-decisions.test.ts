/**
 * A session's memory of recent ACL decisions: a topic is found only by the whole string, and the
 * memory stays bounded however many topics a session sees.
 */
import { describe, expect, it } from 'vitest'
import { GROW_AFTER_MISSES, MAX_SLOTS, NOT_REMEMBERED, RecentDecisions, START_SLOTS } from '../../../src/acl/recent-decisions.js'

/** What a session does: find, and on a miss decide (here: `decide`) and remember. */
function ruleFor(recent: RecentDecisions, topic: string, decide: (t: string) => number): number {
  const found = recent.find(topic)
  if (found !== NOT_REMEMBERED) return found
  const index = decide(topic)
  recent.remember(topic, index)
  return index
}

describe('RecentDecisions', () => {
  it('remembers a decision for the whole topic only: a prefix or an extension is another topic', () => {
    const recent = new RecentDecisions()
    ruleFor(recent, 'devices/dev-1/temp', () => 3)
    expect(recent.find('devices/dev-1/temp')).toBe(3)
    for (const other of ['devices/dev-1', 'devices/dev-1/temp/x', 'devices/dev-10/temp', '']) {
      expect(recent.find(other)).toBe(NOT_REMEMBERED)
    }
  })

  it('never answers with another topic\'s decision, over many topics and rounds', () => {
    const recent = new RecentDecisions()
    const decide = (t: string): number => Number(t.split('/')[1]) % 97
    let decided = 0
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 300; i++) {
        const topic = `site/${i}/value`
        expect(ruleFor(recent, topic, (t) => { decided++; return decide(t) })).toBe(decide(topic))
      }
    }
    expect(decided).toBeGreaterThan(300) // more topics than slots: some are decided again
  })

  it('grows once for a session that keeps missing, and remembers a subscriber\'s few dozen topics', () => {
    const recent = new RecentDecisions()
    expect(recent.size).toBe(START_SLOTS)
    const topics = Array.from({ length: 40 }, (_, i) => `bench/pub-${String(i).padStart(3, '0')}/load`)
    for (let round = 0; round < 3; round++) for (const t of topics) ruleFor(recent, t, () => 7)
    expect(GROW_AFTER_MISSES).toBeLessThan(40 * 3)
    expect(recent.size).toBe(MAX_SLOTS)
    expect(topics.filter((t) => recent.find(t) === 7).length).toBeGreaterThan(20)
  })

  it('decides topics longer than it keeps every time', () => {
    const recent = new RecentDecisions()
    const long = `a/${'x'.repeat(200)}`
    ruleFor(recent, long, () => 1)
    expect(recent.find(long)).toBe(NOT_REMEMBERED)
  })
})
