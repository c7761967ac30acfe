import { describe, expect, it } from 'vitest'
import { MAX_SIZE, parseDuration, parseRate, parseSize, parseWaitMicros } from '../../../src/config/units.js'

describe('parseSize', () => {
  it.each([
    [512, 512], ['512', 512], ['512B', 512], ['16KiB', 16_384], ['1.5MiB', 1_572_864], ['0.25GiB', 268_435_456],
    ['64KB', 64_000], ['2MB', 2_000_000], [' 256KiB ', 262_144], [0, 0],
  ])('reads %j as %d bytes', (input, bytes) => expect(parseSize(input)).toBe(bytes))

  it.each([['big', /expected a size/], ['10kib', /expected a size/], [-1, /whole number/], [1.5, /whole number/], ['0.3B', /whole number of bytes/], [true, /expected a size/]])(
    'refuses %j', (input, reason) => expect(() => parseSize(input)).toThrow(reason))

  it('refuses sizes beyond the largest MQTT packet', () => {
    expect(parseSize(MAX_SIZE)).toBe(MAX_SIZE)
    expect(() => parseSize('1GiB0')).toThrow()
    expect(() => parseSize(MAX_SIZE + 1)).toThrow(/largest MQTT packet/)
  })
})

describe('parseDuration', () => {
  it.each([['250ms', 250], ['5s', 5000], ['1.5s', 1500], ['2m', 120_000], ['1h', 3_600_000], [0, 0], ['0', 0]])(
    'reads %j as %d ms', (input, ms) => expect(parseDuration(input)).toBe(ms))

  it('asks for a unit on a bare number', () => {
    expect(() => parseDuration(30)).toThrow(/needs a unit .* write 30s or 30ms/)
    expect(() => parseDuration('30')).toThrow(/needs a unit/)
  })

  it.each([['5 sec'], ['-1s'], ['s'], [null], ['1000h']])('refuses %j', (input) => expect(() => parseDuration(input)).toThrow())
})

describe('parseWaitMicros', () => {
  it.each([['200us', 200], ['200µs', 200], [' 150 us', 150], ['0.5ms', 500], ['10ms', 10_000], [0, 0], ['0', 0]])(
    'reads %j as %d µs', (input, us) => expect(parseWaitMicros(input)).toBe(us))

  it('asks for a unit on a bare number', () => {
    expect(() => parseWaitMicros(30)).toThrow(/needs a unit .* write 30us or 30ms/)
    expect(() => parseWaitMicros('30')).toThrow(/needs a unit/)
  })

  it.each([['5s', /expected a wait like 200us/], ['-1us', /expected a wait/], ['10.5ms', /too long/], [null, /expected a wait/]])(
    'refuses %j', (input, reason) => expect(() => parseWaitMicros(input)).toThrow(reason))
})

describe('parseRate', () => {
  it('reads per second, minute and hour', () => {
    expect(parseRate('100/s')).toEqual({ count: 100, perMs: 1000 })
    expect(parseRate('10/m')).toEqual({ count: 10, perMs: 60_000 })
    expect(parseRate('5 / h')).toEqual({ count: 5, perMs: 3_600_000 })
  })
  it.each([['100'], ['0/s'], ['10/d'], [5]])('refuses %j', (input) => expect(() => parseRate(input)).toThrow())
})
