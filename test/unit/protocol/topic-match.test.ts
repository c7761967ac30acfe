import { describe, expect, it } from 'vitest'
import { hasWildcard, topicMatches } from '../../../src/protocol/topic-match.js'

const cases: Array<[filter: string, topic: string, matches: boolean]> = [
  ['a/b', 'a/b', true],
  ['a/b', 'a/c', false],
  ['a/b', 'a/bc', false],
  ['a/bc', 'a/b', false],
  ['a/b', 'a/b/c', false],
  ['a/b/c', 'a/b', false],
  ['+', 'a', true],
  ['+', 'a/b', false],
  ['+', '', true],
  ['+/+', '/a', true],
  ['/+', '/a', true],
  ['a/+', 'a/', true],
  ['a/+/c', 'a/b/c', true],
  ['a/+/c', 'a/b/d', false],
  ['a/+', 'a', false],
  ['#', 'a', true],
  ['#', 'a/b/c', true],
  ['#', '/', true],
  ['a/#', 'a', true],
  ['a/#', 'a/b', true],
  ['a/#', 'a/b/c', true],
  ['a/#', 'ab', false],
  ['a/#', 'b/a', false],
  ['+/#', 'a', true],
  ['a/', 'a/', true],
  ['a/', 'a', false],
  ['a', 'a/', false],
  // [MQTT-4.7.2-1]: wildcards at the first level do not match $ topics.
  ['#', '$SYS/broker', false],
  ['+/broker', '$SYS/broker', false],
  ['$SYS/#', '$SYS/broker', true],
  ['$SYS/+', '$SYS/broker', true],
  ['a/+', 'a/$x', true],
]

describe('topicMatches', () => {
  for (const [filter, topic, matches] of cases) {
    it(`'${filter}' ${matches ? 'matches' : 'does not match'} '${topic}'`, () => {
      expect(topicMatches(filter, topic)).toBe(matches)
    })
  }
  it('hasWildcard', () => {
    expect(hasWildcard('a/+/b')).toBe(true)
    expect(hasWildcard('a/#')).toBe(true)
    expect(hasWildcard('a/b')).toBe(false)
  })
})
