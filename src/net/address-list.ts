/**
 * Lists of IP addresses and CIDRs from the config (PROXY protocol `trustedProxies`, ACL `sources`),
 * and whether an address is on this machine. An IPv4 entry also covers its IPv4-mapped IPv6 form
 * (`::ffff:a.b.c.d`), which is how an IPv4 peer shows on a dual-stack socket.
 */
import net, { BlockList } from 'node:net'

/** Builds a matcher for CIDRs or bare addresses. Throws on a bad entry, naming it. */
export function addressList(entries: readonly string[]): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    const [address, prefix] = entry.split('/') as [string, string | undefined]
    const family = net.isIP(address)
    if (family === 0) throw new Error(`'${entry}' is not an IP address or CIDR`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    const bits = prefix === undefined ? (family === 4 ? 32 : 128) : Number(prefix)
    if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128) || (prefix !== undefined && !/^\d+$/.test(prefix))) {
      throw new Error(`'${entry}': bad prefix length`)
    }
    list.addSubnet(address, bits, type)
    if (family === 4) list.addSubnet(`::ffff:${address}`, 96 + bits, 'ipv6')
  }
  return list
}

export function inAddressList(list: BlockList, address: string | undefined): boolean {
  if (address === undefined) return false
  const family = net.isIP(address)
  return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** A loopback host name or address (127.0.0.0/8, ::1, their mapped form, localhost). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true
  const family = net.isIP(host)
  if (family === 4) return host.startsWith('127.')
  if (family === 6) return host === '::1' || host.startsWith('::ffff:127.')
  return false
}
