/** Small zod building blocks shared by the config sections: a non-empty string, a URL of given schemes. */
import { z } from 'zod'

export const text = z.string({ error: 'expected a string' }).min(1, { error: 'must not be empty' })

/** A URL whose scheme is one of `protocols` (e.g. ['http:', 'https:']); `error` names them. */
export function urlOf(protocols: readonly string[], error: string) {
  return text.refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol)
    } catch {
      return false
    }
  }, { error })
}
