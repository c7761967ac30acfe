/**
 * Zod fields for values written with a unit ('64KB', '30s', '100/s'): the parser in units.ts does
 * the work, and its message becomes the config issue for that key.
 */
import { z } from 'zod'
import { parseByteRate, parseDuration, parseRate, parseSize } from './units.js'

export function unit<T>(parse: (v: unknown) => T) {
  return z.unknown().transform((value, ctx): T => {
    try {
      return parse(value)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  })
}

export const size = unit(parseSize)
export const duration = unit(parseDuration)
export const rate = unit(parseRate)
export const byteRate = unit(parseByteRate)
