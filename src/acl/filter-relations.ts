/**
 * Relations between two topic filters that the ACL needs for SUBSCRIBE (a filter is a set of topic
 * names; see protocol/topic-match.ts for the matching rules these mirror):
 *
 * - `filterContains(outer, inner)`: every topic `inner` matches is matched by `outer`. An allow rule
 *   grants a subscription only when it contains it: `devices/+/temp` is NOT contained in
 *   `devices/dev1/#`, because the `+` reaches other devices' topics.
 * - `filtersOverlap(a, b)`: some topic is matched by both. A deny rule refuses every subscription
 *   that could receive one of its topics: `#` overlaps `secret/#`.
 *
 * Topics starting with `$` are matched only by filters whose first level is literal
 * [MQTT-4.7.2-1], so `#` neither contains nor overlaps `$SYS/#`. Both walk the two strings once and
 * allocate nothing. Arguments are valid filters (no `$share/` prefix: strip it first).
 */
const PLUS = 0x2b
const HASH = 0x23
const DOLLAR = 0x24

function levelEnd(s: string, from: number): number {
  const i = s.indexOf('/', from)
  return i < 0 ? s.length : i
}

function sameLevel(a: string, aStart: number, aEnd: number, b: string, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false
  for (let i = 0; i < aEnd - aStart; i++) if (a.charCodeAt(aStart + i) !== b.charCodeAt(bStart + i)) return false
  return true
}

/** True when the filter's first level is a wildcard: it matches no `$` topic. */
function wildFirst(f: string): boolean {
  const c = f.charCodeAt(0)
  return c === PLUS || c === HASH
}

/** True when the filter's first level is literal and starts with `$`: it matches only `$` topics. */
function dollarFirst(f: string): boolean {
  return f.charCodeAt(0) === DOLLAR
}

/** True when the rest of `f` from `at` (pointing at a '/') is exactly "/#". */
function restIsHash(f: string, at: number): boolean {
  return at + 2 === f.length && f.charCodeAt(at + 1) === HASH
}

export function filterContains(outer: string, inner: string): boolean {
  // `inner` may reach `$` topics only if its first level is literal `$…`; `outer` reaches them only the same way.
  if (dollarFirst(inner) && wildFirst(outer)) return false
  let oi = 0
  let ii = 0
  for (;;) {
    const oc = oi < outer.length ? outer.charCodeAt(oi) : -1
    const ic = ii < inner.length ? inner.charCodeAt(ii) : -1
    if (oc === HASH) return true // `#` covers this level and everything below, whatever `inner` has here
    if (ic === HASH) return false // `inner` reaches every depth here; `outer` (not `#`) does not
    const oEnd = levelEnd(outer, oi)
    const iEnd = levelEnd(inner, ii)
    if (oc === PLUS) {
      // `+` covers any single level, literal or `+`.
    } else if (ic === PLUS || !sameLevel(outer, oi, oEnd, inner, ii, iEnd)) {
      return false
    }
    const outerDone = oEnd === outer.length
    const innerDone = iEnd === inner.length
    if (innerDone) return outerDone || restIsHash(outer, oEnd) // "a/#" also covers "a"
    if (outerDone) return false
    oi = oEnd + 1
    ii = iEnd + 1
  }
}

export function filtersOverlap(a: string, b: string): boolean {
  if ((dollarFirst(a) && wildFirst(b)) || (dollarFirst(b) && wildFirst(a))) return false
  let ai = 0
  let bi = 0
  for (;;) {
    const ac = ai < a.length ? a.charCodeAt(ai) : -1
    const bc = bi < b.length ? b.charCodeAt(bi) : -1
    if (ac === HASH || bc === HASH) return true
    const aEnd = levelEnd(a, ai)
    const bEnd = levelEnd(b, bi)
    if (ac !== PLUS && bc !== PLUS && !sameLevel(a, ai, aEnd, b, bi, bEnd)) return false
    const aDone = aEnd === a.length
    const bDone = bEnd === b.length
    if (aDone && bDone) return true
    if (aDone) return restIsHash(b, bEnd)
    if (bDone) return restIsHash(a, aEnd)
    ai = aEnd + 1
    bi = bEnd + 1
  }
}

/** `$share/GROUP/filter` → `filter`; any other filter unchanged. The ACL judges the real filter. */
export function unshare(filter: string): string {
  if (!filter.startsWith('$share/')) return filter
  const slash = filter.indexOf('/', 7)
  return slash < 0 ? filter : filter.slice(slash + 1)
}
