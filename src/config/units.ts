/**
 * Human units in config values: sizes (`256KiB`), durations (`5s`), rates (`100/s`).
 * Each parser returns a number in base units or throws an Error whose message is the reason,
 * which the loader attaches to the key and line.
 */

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** Microseconds per unit of a short wait (`coalescing.wait`). */
const WAIT_UNITS: Record<string, number> = {
  us: 1,
  µs: 1,
  ms: 1000,
}

const RATE_UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** The largest MQTT packet: 1 byte of type, 4 of length, 268,435,455 of body. */
export const MAX_SIZE = 268_435_460
/** setTimeout's ceiling (2^31 - 1 ms, about 24.8 days). */
export const MAX_DURATION_MS = 2_147_483_647

const NUMBER_WITH_UNIT = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value)
}

/** Bytes from a whole number, or a string such as `512`, `512B`, `16KiB`, `1.5MiB`, `64KB`. */
export function parseSize(value: unknown, max = MAX_SIZE): number {
  let bytes: number
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new Error(`expected a size like 256KiB or a whole number of bytes, got ${show(value)}`)
    bytes = value
  } else if (typeof value === 'string') {
    const match = NUMBER_WITH_UNIT.exec(value.trim())
    const unit = match === null ? undefined : SIZE_UNITS[match[2] === '' ? 'B' : match[2]!]
    if (match === null || unit === undefined) {
      throw new Error(`expected a size like 256KiB (units: B, KiB, MiB, GiB, KB, MB, GB), got ${show(value)}`)
    }
    bytes = Number(match[1]) * unit
    if (!Number.isInteger(bytes)) throw new Error(`${show(value)} is not a whole number of bytes`)
  } else {
    throw new Error(`expected a size like 256KiB, got ${show(value)}`)
  }
  if (bytes > max) throw new Error(max === MAX_SIZE ? `${show(value)} is larger than the largest MQTT packet (${MAX_SIZE} bytes)` : `${show(value)} is too large (at most ${max} bytes)`)
  return bytes
}

/** Milliseconds from a string such as `250ms`, `5s`, `1.5s`, `2m`, `1h`; `0` alone is allowed. */
export function parseDuration(value: unknown): number {
  if (value === 0 || value === '0') return 0
  if (typeof value === 'number') throw new Error(`a duration needs a unit (ms, s, m, h): write ${value}s or ${value}ms, not ${value}`)
  if (typeof value !== 'string') throw new Error(`expected a duration like 5s, got ${show(value)}`)
  const match = NUMBER_WITH_UNIT.exec(value.trim())
  if (match !== null && match[2] === '') throw new Error(`a duration needs a unit (ms, s, m, h): write ${match[1]}s or ${match[1]}ms`)
  const unit = match === null ? undefined : DURATION_UNITS[match[2]!]
  if (match === null || unit === undefined) throw new Error(`expected a duration like 5s (units: ms, s, m, h), got ${show(value)}`)
  const ms = Math.round(Number(match[1]) * unit)
  if (ms > MAX_DURATION_MS) throw new Error(`${show(value)} is too long (at most about 24 days)`)
  return ms
}

/** The longest `coalescing.wait`: past a few milliseconds a wait costs more latency than it saves CPU. */
export const MAX_WAIT_US = 10_000

/** Microseconds from a short wait such as `200us`, `200µs`, `0.5ms`; `0` alone is allowed. */
export function parseWaitMicros(value: unknown): number {
  if (value === 0 || value === '0') return 0
  if (typeof value === 'number') throw new Error(`a wait needs a unit (us, ms): write ${value}us or ${value}ms, not ${value}`)
  if (typeof value !== 'string') throw new Error(`expected a wait like 200us, got ${show(value)}`)
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-zµ]*)$/.exec(value.trim())
  if (match !== null && match[2] === '') throw new Error(`a wait needs a unit (us, ms): write ${match[1]}us or ${match[1]}ms`)
  const perUnit = match === null ? undefined : WAIT_UNITS[match[2]!]
  if (match === null || perUnit === undefined) throw new Error(`expected a wait like 200us (units: us, ms), got ${show(value)}`)
  const us = Math.round(Number(match[1]) * perUnit)
  if (us > MAX_WAIT_US) throw new Error(`${show(value)} is too long (at most 10ms)`)
  return us
}

export interface Rate {
  readonly count: number
  readonly perMs: number
}

/** A rate such as `100/s`, `10/m`, `5/h`. */
export function parseRate(value: unknown): Rate {
  if (typeof value !== 'string') throw new Error(`expected a rate like 100/s, got ${show(value)}`)
  const match = /^(\d+(?:\.\d+)?)\s*\/\s*([a-z]+)$/.exec(value.trim())
  const perMs = match === null ? undefined : RATE_UNITS[match[2]!]
  if (match === null || perMs === undefined) throw new Error(`expected a rate like 100/s (per s, m or h), got ${show(value)}`)
  const count = Number(match[1])
  if (count <= 0) throw new Error(`a rate must be above zero, got ${show(value)}`)
  return { count, perMs }
}

/** A memory size (no MQTT packet ceiling): up to 1 PiB. */
export function parseMemorySize(value: unknown): number {
  return parseSize(value, 1024 ** 5)
}

/** A byte rate such as `64KiB/s`, `1MiB/m`, `1000/s` (bytes): the size part takes the units of parseSize. */
export function parseByteRate(value: unknown): Rate {
  if (typeof value !== 'string') throw new Error(`expected a byte rate like 64KiB/s, got ${show(value)}`)
  const slash = value.lastIndexOf('/')
  const perMs = slash < 0 ? undefined : RATE_UNITS[value.slice(slash + 1).trim()]
  if (perMs === undefined) throw new Error(`expected a byte rate like 64KiB/s (per s, m or h), got ${show(value)}`)
  let count: number
  try {
    count = parseMemorySize(value.slice(0, slash).trim())
  } catch {
    throw new Error(`expected a byte rate like 64KiB/s (per s, m or h), got ${show(value)}`)
  }
  if (count <= 0) throw new Error(`a rate must be above zero, got ${show(value)}`)
  return { count, perMs }
}

/** A rate and burst in a token bucket's integer credits (limits/token-bucket.ts). */
export interface RateCredits {
  readonly refill: number
  readonly unitCost: number
  readonly capacity: number
}

/**
 * Whole numbers of credits: `refill` per ms and `unitCost` per unit (fractional counts are scaled by
 * 1000), so refills never drift. Throws when the bucket could not count them exactly.
 */
export function rateCredits(rate: Rate, burstMs: number): RateCredits {
  const scale = Number.isInteger(rate.count) ? 1 : 1000
  const refill = Math.round(rate.count * scale)
  const unitCost = rate.perMs * scale
  // At least one unit fits, whatever the burst.
  const capacity = Math.max(unitCost, refill * burstMs)
  if (refill < 1 || !Number.isSafeInteger(capacity) || !Number.isSafeInteger(unitCost * 268_435_460)) {
    throw new Error(`rate ${rate.count}/${rate.perMs}ms with burst ${burstMs}ms is outside what a token bucket can count exactly`)
  }
  return { refill, unitCost, capacity }
}
