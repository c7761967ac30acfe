/**
 * FNV-1a, kept in the small-integer range (30 bits) so that V8 stores it unboxed and a Map keyed by
 * it stays fast. For a cache slot or a Map key, never for anything a client could use to choose
 * collisions that matter: every user compares the whole key after the hash.
 *
 * Over bytes and over UTF-16 code units: for ASCII the two agree.
 */
const OFFSET = 0x811c9dc5
const PRIME = 0x01000193
const SMALL = 0x3fffffff

/** The hash of `buf[start, end)`. */
export function fnv1aBytes(buf: Uint8Array, start: number, end: number): number {
  let h = OFFSET
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, PRIME)
  return h & SMALL
}

/** The hash of `s[start, end)` (whole string by default), without making the substring. */
export function fnv1aString(s: string, start = 0, end = s.length): number {
  let h = OFFSET
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), PRIME)
  return h & SMALL
}
