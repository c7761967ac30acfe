import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeProxyV2, MAX_V2_LENGTH, parseProxyHeader } from '../../../src/net/proxy-protocol.js'
import { addressList as trustedProxyList, inAddressList as isTrusted } from '../../../src/net/address-list.js'
import { proxyV1, proxyV2 } from '../../helpers/listeners.js'

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

describe('parseProxyHeader: v1', () => {
  it('reads a TCP4 header and reports its length', () => {
    const header = proxyV1('203.0.113.7', 45678)
    const result = parseProxyHeader(Buffer.concat([header, Buffer.from([0x10, 0x00])]))
    expect(result).toEqual({ kind: 'done', header: { address: '203.0.113.7', port: 45678, version: 1 }, length: header.length })
  })

  it('reads a TCP6 header', () => {
    const result = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 40000 1883\r\n'))
    expect(result).toMatchObject({ kind: 'done', header: { address: '2001:db8::7', port: 40000 } })
  })

  it('takes UNKNOWN as "use the socket address"', () => {
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toMatchObject({ kind: 'done', header: { address: null }, length: 15 })
  })

  it('waits for more bytes while the line is incomplete, at any split point', () => {
    const header = proxyV1('198.51.100.1', 1)
    for (let i = 1; i < header.length; i++) expect(parseProxyHeader(header.subarray(0, i)).kind).toBe('incomplete')
  })

  it.each([
    ['no header at all', Buffer.from([0x10, 0x0c, 0x00, 0x04])],
    ['a wrong family', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n')],
    ['a bad address', Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n')],
    ['a v6 address in a TCP4 line', Buffer.from('PROXY TCP4 ::1 5.6.7.8 1 2\r\n')],
    ['a bad port', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n')],
    ['a port with a sign', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n')],
    ['too few fields', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n')],
    ['a line over 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)],
  ])('refuses %s', (_name, bytes) => {
    expect(parseProxyHeader(bytes).kind).toBe('invalid')
  })
})

describe('parseProxyHeader: v2', () => {
  it('reads a PROXY TCP over IPv4 header', () => {
    const header = proxyV2('203.0.113.9', 50000)
    expect(parseProxyHeader(Buffer.concat([header, Buffer.from([0x10])]))).toEqual({ kind: 'done', header: { address: '203.0.113.9', port: 50000, version: 2 }, length: 28 })
  })

  it('waits at every split point', () => {
    const header = proxyV2('203.0.113.9', 50000)
    for (let i = 1; i < header.length; i++) expect(parseProxyHeader(header.subarray(0, i)).kind).toBe('incomplete')
  })

  it('takes LOCAL (health checks) as "use the socket address"', () => {
    const local = Buffer.concat([SIG, Buffer.from([0x20, 0x00, 0x00, 0x00])])
    expect(parseProxyHeader(local)).toMatchObject({ kind: 'done', header: { address: null }, length: 16 })
  })

  it('skips TLVs after the addresses', () => {
    const header = proxyV2('203.0.113.9', 1)
    header.writeUInt16BE(12 + 5, 14)
    const withTlv = Buffer.concat([header, Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd]), Buffer.from([0x10])])
    expect(parseProxyHeader(withTlv)).toMatchObject({ kind: 'done', length: 33 })
  })

  it('refuses a wrong version, an unknown command, a short address block, and a length over the limit', () => {
    const bad = (patch: (b: Buffer) => void): string => {
      const b = Buffer.from(proxyV2('1.2.3.4', 1))
      patch(b)
      return parseProxyHeader(b).kind
    }
    expect(bad((b) => { b[12] = 0x11 })).toBe('invalid')
    expect(bad((b) => { b[12] = 0x22 })).toBe('invalid')
    expect(bad((b) => { b.writeUInt16BE(4, 14) })).toBe('invalid')
    expect(bad((b) => { b.writeUInt16BE(MAX_V2_LENGTH + 1, 14) })).toBe('invalid')
  })
})

describe('encodeProxyV2', () => {
  it('round-trips the client address (IPv4, and IPv4-mapped IPv6)', () => {
    const header = encodeProxyV2({ remoteAddress: '::ffff:203.0.113.5', remotePort: 4242, localAddress: '127.0.0.1', localPort: 8883, tlsVersion: null, certificateCn: null })
    expect(header.subarray(0, 12)).toEqual(SIG)
    expect(header[13]).toBe(0x11)
    expect(parseProxyHeader(header)).toEqual({ kind: 'done', header: { address: '203.0.113.5', port: 4242, version: 2 }, length: 28 })
  })

  it('encodes IPv6 addresses', () => {
    const header = encodeProxyV2({ remoteAddress: '2001:db8::5', remotePort: 1, localAddress: '::1', localPort: 2, tlsVersion: null, certificateCn: null })
    expect(header[13]).toBe(0x21)
    expect(parseProxyHeader(header)).toMatchObject({ header: { address: '2001:db8::5', port: 1 } })
  })

  it('carries the TLS version and the certificate CN in a PP2_TYPE_SSL TLV', () => {
    const header = encodeProxyV2({ remoteAddress: '10.1.2.3', remotePort: 1, localAddress: '10.0.0.1', localPort: 2, tlsVersion: 'TLSv1.3', certificateCn: 'device-1' })
    const tlvs = header.subarray(28)
    expect(tlvs[0]).toBe(0x20)
    expect(tlvs.readUInt16BE(1)).toBe(tlvs.length - 3)
    expect(tlvs[3]! & 0x01).toBe(0x01) // PP2_CLIENT_SSL
    expect(tlvs.readUInt32BE(4)).toBe(0) // verified
    const subs = tlvs.subarray(8)
    expect(subs[0]).toBe(0x21)
    expect(subs.subarray(3, 3 + subs.readUInt16BE(1)).toString()).toBe('TLSv1.3')
    const cn = subs.subarray(3 + subs.readUInt16BE(1))
    expect(cn[0]).toBe(0x22)
    expect(cn.subarray(3).toString()).toBe('device-1')
    expect(parseProxyHeader(header)).toMatchObject({ kind: 'done', length: header.length })
  })
})

describe('trustedProxies', () => {
  it('matches CIDRs and bare addresses, IPv4 also in its IPv6-mapped form', () => {
    const list = trustedProxyList(['10.0.0.0/8', '192.0.2.1', '2001:db8::/32'])
    expect(isTrusted(list, '10.200.3.4')).toBe(true)
    expect(isTrusted(list, '::ffff:10.200.3.4')).toBe(true)
    expect(isTrusted(list, '192.0.2.1')).toBe(true)
    expect(isTrusted(list, '192.0.2.2')).toBe(false)
    expect(isTrusted(list, '2001:db8:1::1')).toBe(true)
    expect(isTrusted(list, '127.0.0.1')).toBe(false)
    expect(isTrusted(list, undefined)).toBe(false)
  })

  it('refuses bad entries', () => {
    expect(() => trustedProxyList(['10.0.0.0/33'])).toThrow(/prefix/)
    expect(() => trustedProxyList(['lb.example.com'])).toThrow(/not an IP address/)
    expect(() => trustedProxyList(['10.0.0.0/x'])).toThrow(/prefix/)
  })
})

describe('parseProxyHeader on hostile input', () => {
  it('never throws and never reads past its bounds, whatever the bytes (property)', () => {
    const prefix = fc.constantFrom(Buffer.alloc(0), Buffer.from('PROXY '), SIG, Buffer.concat([SIG, Buffer.from([0x21, 0x11])]), Buffer.concat([SIG, Buffer.from([0x21, 0x21])]))
    fc.assert(fc.property(prefix, fc.uint8Array({ maxLength: 300 }), (head, tail) => {
      const bytes = Buffer.concat([head, Buffer.from(tail)])
      const result = parseProxyHeader(bytes)
      if (result.kind === 'done') {
        expect(result.length).toBeLessThanOrEqual(bytes.length)
        expect(result.length).toBeLessThanOrEqual(16 + MAX_V2_LENGTH)
      }
    }), { numRuns: 2000 })
  })
})
