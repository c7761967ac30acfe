/**
 * What the broker sees of a client's credentials (`auth.upstreamCredentials`): passthrough (the
 * CONNECT as the client sent it), strip (no user name, no password), or one fixed account for all
 * clients, so a legacy broker with one shared account never sees device secrets. Strip and replace
 * re-encode the CONNECT (a deliberate rewrite); everything else in it
 * (client id, will, keepalive, clean flag, 5.0 properties) is kept.
 */
import { generate, type IConnectPacket } from 'mqtt-packet'
import type { UpstreamCredentials } from '../config/types.js'

/** The CONNECT bytes to send upstream; `frame` itself on passthrough. Null if it cannot be encoded. */
export function upstreamConnect(frame: Buffer, packet: IConnectPacket, mode: UpstreamCredentials): Buffer | null {
  if (mode === 'passthrough') return frame
  const rewritten: IConnectPacket = { ...packet }
  delete rewritten.username
  delete rewritten.password
  if (mode !== 'strip') {
    rewritten.username = mode.username
    if (mode.password !== null) rewritten.password = Buffer.from(mode.password, 'utf8')
  }
  try {
    return generate(rewritten, { protocolVersion: packet.protocolVersion ?? 4 })
  } catch {
    return null
  }
}
