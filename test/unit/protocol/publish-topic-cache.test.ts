/**
 * A PublishView remembers its last few topics so that a repeated topic is not decoded again: the
 * topic it hands out must always be the one in the frame, whatever the order, length or encoding.
 */
import { generate } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { PublishView, readPublish } from '../../../src/protocol/publish.js'

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
