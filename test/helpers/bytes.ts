/** Byte-level helpers for hand-made packets. */

/** The minimal MQTT variable byte integer encoding of `value` (a Remaining Length). */
export function varint(value: number): number[] {
  const out: number[] = []
  do {
    let byte = value % 128
    value = Math.floor(value / 128)
    if (value > 0) byte |= 0x80
    out.push(byte)
  } while (value > 0)
  return out
}
