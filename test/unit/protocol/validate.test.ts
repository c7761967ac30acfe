import { describe, expect, it } from 'vitest'
import { ReasonCode } from '../../../src/protocol/reason.js'
import { checkClientId, checkTopicFilter, checkTopicName, checkTopicNameString, checkUtf8 } from '../../../src/protocol/validate.js'

describe('checkTopicFilter', () => {
  it.each(['#', '+', 'a/#', 'a/+/b', '+/+', '/', 'a//b', '+/#', 'sport/tennis/+', '$SYS/#', '$share/g/a/#', '$share/g/+'])(
    'accepts %s', (filter) => expect(checkTopicFilter(filter)).toBe(0))

  it.each([
    ['a/#/b', '# not last [MQTT-4.7.1-1]'],
    ['a#', '# not alone in its level [MQTT-4.7.1-1]'],
    ['a/b#', '# not alone in its level [MQTT-4.7.1-1]'],
    ['a+', '+ not alone in its level [MQTT-4.7.1-2]'],
    ['a/+b', '+ not alone in its level [MQTT-4.7.1-2]'],
    ['', 'empty [MQTT-4.7.3-1]'],
    ['$share/', 'shared without name [MQTT-4.8.2-1]'],
    ['$share//a', 'empty share name [MQTT-4.8.2-1]'],
    ['$share/g', 'shared without filter [MQTT-4.8.2-2]'],
    ['$share/g/', 'shared without filter [MQTT-4.8.2-2]'],
    ['$share/g+/a', 'wildcard in share name [MQTT-4.8.2-2]'],
  ])('refuses %s: %s', (filter) => expect(checkTopicFilter(filter)).toBe(ReasonCode.TopicFilterInvalid))

  it('refuses U+0000 in a filter [MQTT-4.7.3-2]', () => {
    expect(checkTopicFilter('a/\u0000')).toBe(ReasonCode.MalformedPacket)
  })
})

describe('checkTopicNameString', () => {
  it('accepts a plain name', () => expect(checkTopicNameString('a/b/c')).toBe(0))
  it.each(['a/+', '#', ''])('refuses %j', (topic) => expect(checkTopicNameString(topic)).toBe(ReasonCode.TopicNameInvalid))
})

describe('checkUtf8', () => {
  it('accepts ASCII and well-formed multi-byte UTF-8', () => {
    const buf = Buffer.from('héllo 世界 🌍')
    expect(checkUtf8(buf, 0, buf.length)).toBe(0)
  })
  it('refuses U+0000 and ill-formed UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2]', () => {
    expect(checkUtf8(Buffer.from([0x61, 0x00]), 0, 2)).toBe(ReasonCode.MalformedPacket)
    expect(checkUtf8(Buffer.from([0xff]), 0, 1)).toBe(ReasonCode.MalformedPacket)
  })
  it('refuses what the broker refuses: control characters and non-characters', () => {
    for (const text of ['a\u0001', '\t', '\u007f', '\u0080', '\u009f', '\ufdd0', '\uffff', '\u{2fffe}']) {
      const buf = Buffer.from(text)
      expect(checkUtf8(buf, 0, buf.length), JSON.stringify(text)).toBe(ReasonCode.MalformedPacket)
    }
  })
})

describe('checkTopicName', () => {
  const check = (text: string): number => {
    const buf = Buffer.from(text)
    return checkTopicName(buf, 0, buf.length)
  }
  it('accepts printable ASCII, spaces and non-ASCII text', () => {
    expect(check('a b/c-d_e.f/$g/~/é/世')).toBe(0)
  })
  it('refuses wildcards as an invalid name, control characters and non-characters as malformed', () => {
    expect(check('a/+')).toBe(ReasonCode.TopicNameInvalid)
    expect(check('#')).toBe(ReasonCode.TopicNameInvalid)
    for (const text of ['a\u0000', 'a\u001f', 'a\u007f', 'a\u0085', 'a\ufffe', 'a\ufdef']) expect(check(text), JSON.stringify(text)).toBe(ReasonCode.MalformedPacket)
  })
})

describe('checkClientId', () => {
  it('accepts long ids on 3.1.1 and 5.0 [MQTT-3.1.3-5]', () => {
    expect(checkClientId('x'.repeat(200), 4)).toBe(0)
    expect(checkClientId('', 5)).toBe(0)
  })
  it('requires a 3.1 id, of any length the broker takes (Mosquitto does not apply 3.1\'s 23 bytes)', () => {
    expect(checkClientId('x'.repeat(36), 3)).toBe(0)
    expect(checkClientId('', 3)).toBe(ReasonCode.ClientIdentifierNotValid)
    expect(checkClientId('x'.repeat(23), 3)).toBe(0)
  })
  it('refuses U+0000', () => expect(checkClientId('a\u0000', 4)).toBe(ReasonCode.MalformedPacket))
})
