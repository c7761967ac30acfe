import { describe, expect, it } from 'vitest'
import { filterContains, filtersOverlap, unshare } from '../../../src/acl/filter-relations.js'

// [outer, inner, contains]
const containment: Array<[string, string, boolean]> = [
  ['devices/dev1/#', 'devices/dev1/temp', true],
  ['devices/dev1/#', 'devices/dev1/#', true],
  ['devices/dev1/#', 'devices/dev1', true],
  ['devices/dev1/#', 'devices/dev1/+', true],
  ['devices/dev1/#', 'devices/dev1/+/x/#', true],
  ['devices/dev1/#', 'devices/+/temp', false], // the + reaches other devices
  ['devices/dev1/#', 'devices/#', false],
  ['devices/dev1/#', '#', false],
  ['devices/dev1/#', '+/+', false],
  ['devices/dev1/#', 'devices/dev10/temp', false],
  ['devices/+/temp', 'devices/dev1/temp', true],
  ['devices/+/temp', 'devices/+/temp', true],
  ['devices/+/temp', 'devices/#', false],
  ['devices/+/temp', 'devices/dev1/temp/x', false],
  ['a/+', 'a', false],
  ['a/+', 'a/', true],
  ['+', '+', true],
  ['+', '#', false],
  ['#', '#', true],
  ['#', 'a/b/c', true],
  ['#', '+/+', true],
  ['a/b', 'a/b', true],
  ['a/b', 'a/b/c', false],
  ['a/b/c', 'a/b', false],
  // $ topics [MQTT-4.7.2-1]: `#` does not reach them
  ['#', '$SYS/#', false],
  ['+/#', '$SYS/broker', false],
  ['$SYS/#', '$SYS/broker/load', true],
  ['$SYS/#', '#', false],
]

// [a, b, overlap]
const overlap: Array<[string, string, boolean]> = [
  ['secret/#', '#', true],
  ['secret/#', '+/x', true],
  ['secret/#', 'secret', true],
  ['secret/#', 'public/#', false],
  ['secret/x', 'secret/+', true],
  ['secret/x', 'secret/y', false],
  ['a/+/c', 'a/b/+', true],
  ['a/+/c', 'a/b/d', false],
  ['a/b', 'a/b/c', false],
  ['a', 'a/#', true],
  ['+', 'a/b', false],
  ['#', '$SYS/#', false],
  ['+/broker', '$SYS/broker', false],
  ['$SYS/#', '$SYS/+', true],
  ['#', '#', true],
]

describe('filterContains', () => {
  for (const [outer, inner, expected] of containment) {
    it(`'${outer}' ${expected ? 'contains' : 'does not contain'} '${inner}'`, () => {
      expect(filterContains(outer, inner)).toBe(expected)
    })
  }
})

describe('filtersOverlap', () => {
  for (const [a, b, expected] of overlap) {
    it(`'${a}' and '${b}' ${expected ? 'overlap' : 'do not overlap'}`, () => {
      expect(filtersOverlap(a, b)).toBe(expected)
      expect(filtersOverlap(b, a)).toBe(expected)
    })
  }
})

describe('unshare', () => {
  it('strips a $share/GROUP/ prefix and keeps other filters', () => {
    expect(unshare('$share/g/devices/#')).toBe('devices/#')
    expect(unshare('$share/g/#')).toBe('#')
    expect(unshare('devices/#')).toBe('devices/#')
    expect(unshare('$SYS/#')).toBe('$SYS/#')
  })
})
