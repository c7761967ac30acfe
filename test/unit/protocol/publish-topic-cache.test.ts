/**
 * A PublishView remembers its last few topics so that a repeated topic is not decoded again: the
 * topic it hands out must always be the one in the frame, whatever the order, length or encoding.
 */
import { generate } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'
import { GROW_AFTER_MISSES, MAX_SLOTS, START_SLOTS, TopicCache } from '../../../src/protocol/topic-cache.js'

function topicRead(view: PublishView, topic: string): string {
  const frame = generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
  expect(readPublish(frame, frame[0]! & 0x0f, 1 + (frame.length - 2 < 128 ? 1 : 2), 4, true, view)).toBe(0)
  const read = view.topic
  view.clear()
  return read
}

describe('PublishView topic cache', () => {
  it('hands out the frame\'s topic for repeated, alternating and same-length topics', () => {
    const view = new PublishView()
    const topics = ['a/b', 'a/c', 'a/b', 'b/b', 'a/b', 'c/d', 'e/f', 'g/h', 'a/b', 'a/c', 'ä/b', 'a/b', 'ä/b']
    for (const t of topics) expect(topicRead(view, t)).toBe(t)
  })

  it('returns the same string for a repeated topic (no new decode)', () => {
    const view = new PublishView()
    const first = topicRead(view, 'devices/dev-1/temp')
    expect(topicRead(view, 'devices/dev-1/temp')).toBe(first)
  })

  it('decodes topics longer than the cache keeps, every time, correctly', () => {
    const view = new PublishView()
    const long = `devices/${'x'.repeat(300)}/temp`
    const long2 = `devices/${'x'.repeat(299)}y/temp`
    expect(topicRead(view, long)).toBe(long)
    expect(topicRead(view, long2)).toBe(long2)
    expect(topicRead(view, long)).toBe(long)
  })

  it('cycles through more topics than it remembers without mixing them up', () => {
    const view = new PublishView()
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 9; i++) expect(topicRead(view, `t/${i}`)).toBe(`t/${i}`)
    }
  })
})

describe('TopicCache', () => {
  const decode = (cache: TopicCache, topic: string): string => {
    const bytes = Buffer.concat([Buffer.from('xx'), Buffer.from(topic), Buffer.from('yy')])
    return cache.decode(bytes, 2, bytes.length - 2)
  }

  it('finds a topic only by all of its bytes: a prefix, an extension or one other byte is another topic', () => {
    const cache = new TopicCache()
    const topic = decode(cache, 'devices/dev-1/temp')
    expect(decode(cache, 'devices/dev-1/temp')).toBe(topic)
    for (const other of ['devices/dev-1/tem', 'devices/dev-1/temp/x', 'devices/dev-2/temp', 'Devices/dev-1/temp']) {
      expect(decode(cache, other)).toBe(other)
    }
  })

  it('grows once from a few slots to many for a view that keeps missing, and stays bounded', () => {
    const cache = new TopicCache()
    expect(cache.size).toBe(START_SLOTS)
    for (let i = 0; i < GROW_AFTER_MISSES - 1; i++) decode(cache, `sensors/${i}/value`)
    expect(cache.size).toBe(START_SLOTS)
    for (let i = 0; i < 10 * MAX_SLOTS; i++) expect(decode(cache, `site/${i}/value`)).toBe(`site/${i}/value`)
    expect(cache.size).toBe(MAX_SLOTS)
  })

  it('after growing, a subscriber\'s many topics are mostly found again (same strings)', () => {
    const cache = new TopicCache()
    const topics = Array.from({ length: 40 }, (_, i) => `bench/pub-${String(i).padStart(3, '0')}/load`)
    for (let round = 0; round < 3; round++) for (const t of topics) decode(cache, t)
    const first = topics.map((t) => decode(cache, t))
    const again = topics.map((t) => decode(cache, t))
    expect(again).toEqual(topics)
    // Slots are picked by hash: some of 40 topics share one, the rest come back as the same string.
    expect(again.filter((t, i) => Object.is(t, first[i])).length).toBeGreaterThan(20)
  })

  it('decodes names that are not ASCII every time, correctly, and never confuses them with ASCII ones', () => {
    const cache = new TopicCache()
    for (let round = 0; round < 3; round++) {
      expect(decode(cache, 'ä/b')).toBe('ä/b')
      expect(decode(cache, 'a/b')).toBe('a/b')
      expect(decode(cache, '温度/1')).toBe('温度/1')
    }
    // Invalid UTF-8 decodes to U+FFFD, one character per byte: never found again by its bytes.
    const bad = Buffer.from([0x61, 0xff, 0x62])
    expect(cache.decode(bad, 0, 3)).toBe('a\ufffdb')
    expect(cache.decode(Buffer.from('a\ufffdb'), 0, 5)).toBe('a\ufffdb')
    expect(cache.decode(bad, 0, 3)).toBe('a\ufffdb')
  })
})
