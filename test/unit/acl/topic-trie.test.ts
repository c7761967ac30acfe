/**
 * The rule index must decide exactly as the plain ordered scan it replaces: checked on random rule
 * lists and topics (fast-check), including `$` topics, empty levels, `+`, `#` and rules that do
 * not apply to the session.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TopicTrie } from '../../../src/acl/topic-trie.js'
import { topicMatches } from '../../../src/protocol/topic-match.js'

const level = fc.constantFrom('a', 'b', '$s', '', 'ab')
const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t.length > 0)
const filter = fc.tuple(fc.array(fc.constantFrom('a', 'b', '$s', '', '+'), { minLength: 0, maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0)

function reference(filters: string[], applies: Uint8Array, t: string): number {
  for (let i = 0; i < filters.length; i++) if (applies[i] === 1 && topicMatches(filters[i]!, t)) return i
  return filters.length
}

describe('TopicTrie', () => {
  it('finds the same first matching rule as an ordered scan', () => {
    fc.assert(fc.property(fc.array(filter, { minLength: 1, maxLength: 12 }), fc.array(topic, { minLength: 1, maxLength: 8 }), fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }), (filters, topics, mask) => {
      const trie = new TopicTrie()
      filters.forEach((f, i) => trie.add(f, i))
      const applies = Uint8Array.from(filters.map((_, i) => (mask[i] ? 1 : 0)))
      for (const t of topics) expect(trie.first(t, applies, filters.length)).toBe(reference(filters, applies, t))
    }), { numRuns: 2000 })
  })

  it('examples', () => {
    const trie = new TopicTrie()
    const rules = ['devices/x/#', 'devices/+/temp', '#', '$SYS/#', 'a/']
    rules.forEach((f, i) => trie.add(f, i))
    const all = new Uint8Array(rules.length).fill(1)
    expect(trie.first('devices/x', all, 5)).toBe(0) // "a/#" matches "a"
    expect(trie.first('devices/y/temp', all, 5)).toBe(1)
    expect(trie.first('other', all, 5)).toBe(2)
    expect(trie.first('$SYS/uptime', all, 5)).toBe(3) // `#` does not match $ topics
    expect(trie.first('$other', all, 5)).toBe(5)
    expect(trie.first('a/', Uint8Array.from([1, 1, 0, 1, 1]), 5)).toBe(4)
  })
})
