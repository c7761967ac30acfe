/**
 * Whether a topic name matches a topic filter, by the MQTT rules (section 4.7): `+` matches exactly
 * one level (which may be empty), `#` (always last) matches its parent level and every level below,
 * and a topic that starts with `$` is not matched by a filter whose first level is a wildcard
 * [MQTT-4.7.2-1]. Both arguments are assumed valid (checked by protocol/validate.ts or at config
 * load). It walks the two strings once and allocates nothing.
 */
const PLUS = 0x2b
const HASH = 0x23
const DOLLAR = 0x24

export function topicMatches(filter: string, topic: string): boolean {
  const fl = filter.length
  const tl = topic.length
  if (tl > 0 && topic.charCodeAt(0) === DOLLAR && fl > 0) {
    const first = filter.charCodeAt(0)
    if (first === PLUS || first === HASH) return false
  }
  let fi = 0
  let ti = 0
  for (;;) {
    const c = fi < fl ? filter.charCodeAt(fi) : -1
    if (c === HASH) return true
    let fEnd = filter.indexOf('/', fi)
    if (fEnd < 0) fEnd = fl
    let tEnd = topic.indexOf('/', ti)
    if (tEnd < 0) tEnd = tl
    if (c !== PLUS) {
      if (fEnd - fi !== tEnd - ti) return false
      for (let i = 0; i < fEnd - fi; i++) {
        if (filter.charCodeAt(fi + i) !== topic.charCodeAt(ti + i)) return false
      }
    }
    const filterDone = fEnd === fl
    const topicDone = tEnd === tl
    if (filterDone) return topicDone
    // "a/#" also matches "a" (the parent level) [MQTT-4.7.1-2].
    if (topicDone) return fEnd + 2 === fl && filter.charCodeAt(fEnd + 1) === HASH
    fi = fEnd + 1
    ti = tEnd + 1
  }
}

/** True when the filter contains `+` or `#`. */
export function hasWildcard(filter: string): boolean {
  for (let i = 0; i < filter.length; i++) {
    const c = filter.charCodeAt(i)
    if (c === PLUS || c === HASH) return true
  }
  return false
}

