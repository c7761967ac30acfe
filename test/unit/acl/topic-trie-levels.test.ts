/**
 * The trie finds a literal level by a hash of the topic's characters, without slicing the topic:
 * levels that share a hash, a prefix or their characters in another order must never be confused.
 */
import { describe, expect, it } from 'vitest'
import { TopicTrie } from '../../../src/acl/topic-trie.js'

describe('TopicTrie literal levels', () => {
  it('tells apart thousands of sibling levels, prefixes of each other and anagrams', () => {
    const trie = new TopicTrie()
    const levels: string[] = []
    for (let i = 0; i < 5000; i++) levels.push(`site${i}`)
    levels.push('ab', 'ba', 'a', 'b', 'é', 'e\u0301', '')
    levels.forEach((level, i) => trie.add(`${level}/status`, i))
    const all = new Uint8Array(levels.length).fill(1)
    levels.forEach((level, i) => expect(trie.first(`${level}/status`, all, levels.length)).toBe(i))
    expect(trie.first('site5000/status', all, levels.length)).toBe(levels.length)
    expect(trie.first('site/status', all, levels.length)).toBe(levels.length)
    expect(trie.first('abc/status', all, levels.length)).toBe(levels.length)
  })

  it('finds a level in the middle and at the end of a topic', () => {
    const trie = new TopicTrie()
    trie.add('x/devices/temp', 0)
    trie.add('x/devices/tem', 1)
    const all = new Uint8Array(2).fill(1)
    expect(trie.first('x/devices/temp', all, 2)).toBe(0)
    expect(trie.first('x/devices/tem', all, 2)).toBe(1)
    expect(trie.first('x/devices/te', all, 2)).toBe(2)
    expect(trie.first('x/devices/tempp', all, 2)).toBe(2)
  })
})
