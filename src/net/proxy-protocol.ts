/**
 * PROXY protocol (HAProxy's spec, versions 1 and 2): a load balancer in front of Moat writes one
 * header before the client's first byte, naming the real client address. Read on the way in (before
 * TLS) by listeners with `proxyProtocol: true`; written on the way out (v2) when the upstream asks
 * for it, so the broker learns the real address too.
 *
 * Reading is bounded: a v1 header is at most 107 bytes, a v2 header at most MAX_V2_LENGTH bytes of
 * addresses and TLVs; anything longer, malformed, or from a source outside `trustedProxies` refuses
 * the connection.
 */
import net, { type Socket } from 'node:net'

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
/** The spec's bound for a v1 line, CRLF included. */
const V1_MAX = 107
/** Largest v2 address + TLV block we accept (the spec allows 65535; load balancers send far less). */
export const MAX_V2_LENGTH = 1024

// v2 TLV types (spec section 2.2.7).
const PP2_TYPE_SSL = 0x20
const PP2_SUBTYPE_SSL_VERSION = 0x21
const PP2_SUBTYPE_SSL_CN = 0x22
const PP2_CLIENT_SSL = 0x01
const PP2_CLIENT_CERT_CONN = 0x02
const PP2_CLIENT_CERT_SESS = 0x04

export interface ProxyAddress {
  /** The real client address and port, or null for a LOCAL (v2) / UNKNOWN (v1) header: use the socket's. */
  readonly address: string | null
  readonly port: number
  readonly version: 1 | 2
}

export type ProxyParse =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | { readonly kind: 'done'; readonly header: ProxyAddress; readonly length: number }

const INCOMPLETE: ProxyParse = Object.freeze({ kind: 'incomplete' })
function invalid(reason: string): ProxyParse {
  return { kind: 'invalid', reason }
}

/** Parses a PROXY header at the start of `buf` (all bytes received so far). */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return INCOMPLETE
  if (buf[0] === 0x0d) return parseV2(buf)
  if (buf[0] === 0x50) return parseV1(buf)
  return invalid('no PROXY protocol header')
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length)
  return buf.subarray(0, n).equals(prefix.subarray(0, n))
}

function parseV1(buf: Buffer): ProxyParse {
  if (!startsWith(buf, V1_PREFIX)) return invalid('no PROXY protocol header')
  const end = buf.indexOf('\r\n', 0, 'latin1')
  if (end === -1) return buf.length >= V1_MAX ? invalid('v1 header longer than 107 bytes') : INCOMPLETE
  if (end + 2 > V1_MAX) return invalid('v1 header longer than 107 bytes')
  const parts = buf.toString('latin1', 0, end).split(' ')
  const length = end + 2
  if (parts[1] === 'UNKNOWN') return { kind: 'done', header: { address: null, port: 0, version: 1 }, length }
  if (parts.length !== 6) return invalid('v1 header: expected PROXY TCP4|TCP6 src dst sport dport')
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string]
  const want = family === 'TCP4' ? 4 : family === 'TCP6' ? 6 : 0
  if (want === 0) return invalid(`v1 header: unknown protocol '${family}'`)
  if (net.isIP(src) !== want || net.isIP(dst) !== want) return invalid('v1 header: bad address')
  const port = v1Port(sport)
  if (port < 0 || v1Port(dport) < 0) return invalid('v1 header: bad port')
  return { kind: 'done', header: { address: src, port, version: 1 }, length }
}

function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return -1
  const n = Number(text)
  return n <= 65535 ? n : -1
}

function parseV2(buf: Buffer): ProxyParse {
  if (!startsWith(buf, V2_SIGNATURE)) return invalid('no PROXY protocol header')
  if (buf.length < 16) return INCOMPLETE
  const verCmd = buf[12]!
  if (verCmd >> 4 !== 2) return invalid(`v2 header: version ${verCmd >> 4}`)
  const command = verCmd & 0x0f
  if (command > 1) return invalid(`v2 header: unknown command ${command}`)
  const family = buf[13]!
  const len = buf.readUInt16BE(14)
  if (len > MAX_V2_LENGTH) return invalid(`v2 header: ${len} bytes of addresses and TLVs (limit ${MAX_V2_LENGTH})`)
  if (buf.length < 16 + len) return INCOMPLETE
  const length = 16 + len
  if (command === 0) return { kind: 'done', header: { address: null, port: 0, version: 2 }, length } // LOCAL: health check
  switch (family) {
    case 0x11: // TCP over IPv4
    case 0x12: // UDP over IPv4
      if (len < 12) return invalid('v2 header: IPv4 block too short')
      return { kind: 'done', header: { address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, port: buf.readUInt16BE(24), version: 2 }, length }
    case 0x21: // TCP over IPv6
    case 0x22:
      if (len < 36) return invalid('v2 header: IPv6 block too short')
      return { kind: 'done', header: { address: ipv6(buf.subarray(16, 32)), port: buf.readUInt16BE(48), version: 2 }, length }
    case 0x00: // UNSPEC: use the socket's address
      return { kind: 'done', header: { address: null, port: 0, version: 2 }, length }
    default:
      return invalid(`v2 header: unsupported address family 0x${family.toString(16)}`)
  }
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  // Let the URL parser compress it to the canonical form ('::1', '2001:db8::1').
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)
}

/**
 * Reads a PROXY header from a fresh socket, then hands the socket on with the bytes after the
 * header put back (`unshift`), so TLS or MQTT reads them next. Bounded by the header limits; the
 * caller owns the timeout.
 */
export function readProxyHeader(socket: Socket, done: (result: ProxyParse) => void): void {
  let buffered: Buffer = Buffer.alloc(0)
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    const result = parseProxyHeader(buffered)
    if (result.kind === 'incomplete') {
      if (buffered.length > 16 + MAX_V2_LENGTH) finish({ kind: 'invalid', reason: 'header too long' }, null)
      return
    }
    finish(result, result.kind === 'done' && buffered.length > result.length ? buffered.subarray(result.length) : null)
  }
  const onEnd = (): void => finish({ kind: 'invalid', reason: 'closed before a complete PROXY header' }, null)
  function finish(result: ProxyParse, rest: Buffer | null): void {
    // Stop reading first: unshift() on a flowing socket would hand the bytes straight back to onData.
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.pause()
    if (rest !== null) socket.unshift(rest)
    done(result)
  }
  socket.on('data', onData)
  socket.on('end', onEnd)
}

export interface ProxyV2Source {
  readonly remoteAddress: string
  readonly remotePort: number
  /** Moat's own address the client reached (the destination in the header). */
  readonly localAddress: string
  readonly localPort: number
  readonly tlsVersion: string | null
  readonly certificateCn: string | null
}

/**
 * A PROXY v2 header (command PROXY, TCP) for the broker: the client's real address as source, and,
 * for a TLS client, a PP2_TYPE_SSL TLV with the TLS version and the verified certificate's CN.
 */
export function encodeProxyV2(src: ProxyV2Source): Buffer {
  const v4 = net.isIPv4(unmapped(src.remoteAddress)) && net.isIPv4(unmapped(src.localAddress))
  const addressBlock = v4 ? 12 : 36
  const tlvs: Buffer[] = []
  if (src.tlsVersion !== null) {
    const subs: Buffer[] = [tlv(PP2_SUBTYPE_SSL_VERSION, Buffer.from(src.tlsVersion, 'latin1'))]
    if (src.certificateCn !== null && src.certificateCn !== '') subs.push(tlv(PP2_SUBTYPE_SSL_CN, Buffer.from(src.certificateCn, 'utf8')))
    const head = Buffer.alloc(5)
    head[0] = PP2_CLIENT_SSL | (src.certificateCn !== null ? PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS : 0)
    head.writeUInt32BE(0, 1) // verify: 0 = the client certificate (if any) was verified
    tlvs.push(tlv(PP2_TYPE_SSL, Buffer.concat([head, ...subs])))
  }
  const tlvBytes = Buffer.concat(tlvs)
  const header = Buffer.alloc(16 + addressBlock)
  V2_SIGNATURE.copy(header, 0)
  header[12] = 0x21 // version 2, PROXY
  header[13] = v4 ? 0x11 : 0x21 // TCP over IPv4 / IPv6
  header.writeUInt16BE(addressBlock + tlvBytes.length, 14)
  if (v4) {
    writeV4(header, 16, unmapped(src.remoteAddress))
    writeV4(header, 20, unmapped(src.localAddress))
    header.writeUInt16BE(src.remotePort, 24)
    header.writeUInt16BE(src.localPort, 26)
  } else {
    writeV6(header, 16, src.remoteAddress)
    writeV6(header, 32, src.localAddress)
    header.writeUInt16BE(src.remotePort, 48)
    header.writeUInt16BE(src.localPort, 50)
  }
  return Buffer.concat([header, tlvBytes])
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3)
  head[0] = type
  head.writeUInt16BE(value.length, 1)
  return Buffer.concat([head, value])
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address
}

function writeV4(buf: Buffer, at: number, address: string): void {
  const parts = address.split('.')
  for (let i = 0; i < 4; i++) buf[at + i] = Number(parts[i])
}

function writeV6(buf: Buffer, at: number, address: string): void {
  const plain = unmapped(address)
  if (net.isIPv4(plain)) {
    // An IPv4 address in an IPv6 header: ::ffff:a.b.c.d
    buf.writeUInt16BE(0xffff, at + 10)
    writeV4(buf, at + 12, plain)
    return
  }
  const [head, tail] = plain.includes('::') ? plain.split('::') as [string, string] : [plain, '']
  const h = head === '' ? [] : head.split(':')
  const t = tail === '' ? [] : tail.split(':')
  const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t]
  for (let i = 0; i < 8; i++) buf.writeUInt16BE(parseInt(groups[i]!, 16) || 0, at + i * 2)
}
