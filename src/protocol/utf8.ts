/**
 * The UTF-8 rule every string field is held to: the one the broker applies, so that a string Moat
 * forwards is never one the broker refuses by closing the connection.
 *
 * Refused:
 * - ill-formed UTF-8: stray continuation bytes, overlong forms, truncated sequences, surrogates
 *   U+D800..U+DFFF, code points above U+10FFFF [MQTT-1.5.4-1];
 * - U+0000 [MQTT-1.5.4-2];
 * - control characters U+0001..U+001F and U+007F..U+009F, and the non-characters U+FDD0..U+FDEF
 *   and U+xFFFE / U+xFFFF of every plane: the spec says a string SHOULD NOT hold them and a
 *   receiver MAY treat a packet that does as malformed [MQTT-1.5.4-3]; Mosquitto does.
 */

/** True when `buf[start, end)` is a string field the broker would refuse. */
export function isRefusedString(buf: Buffer, start: number, end: number): boolean {
  let i = start
  while (i < end) {
    const b = buf[i]!
    if (b < 0x80) {
      if (b < 0x20 || b === 0x7f) return true
      i++
      continue
    }
    // Below 0xC2: a continuation byte out of place, or the overlong lead bytes 0xC0/0xC1.
    if (b < 0xc2 || b > 0xf4) return true
    const extra = b < 0xe0 ? 1 : b < 0xf0 ? 2 : 3
    if (i + extra >= end) return true
    let cp = b & (0x3f >> extra)
    for (let k = 1; k <= extra; k++) {
      const c = buf[i + k]!
      if ((c & 0xc0) !== 0x80) return true
      cp = (cp << 6) | (c & 0x3f)
    }
    if (extra === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return true
    if (extra === 3 && (cp < 0x10000 || cp > 0x10ffff)) return true
    // Two-byte forms start at U+0080: U+0080..U+009F are the C1 controls.
    if (cp <= 0x9f) return true
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return true
    i += extra + 1
  }
  return false
}

