/**
 * Cross-key checks of the addresses a config binds and dials, which the schema sees one key at a
 * time: two listeners, or the admin endpoint and a listener, that cannot both bind (the second
 * fails at start with EADDRINUSE), and a listener on the broker's own address (Moat would fail to
 * bind where the broker listens, or dial itself). Only certain conflicts are reported: a host
 * name is compared by its spelling, never resolved.
 */
import net from 'node:net'
import { isLoopback } from '../net/address-list.js'
import type { MoatConfig } from './types.js'

export interface AddressIssue {
  readonly path: Array<string | number>
  readonly message: string
}

interface Bind {
  readonly host: string
  readonly port: number
}

/** An IP address in one spelling (IPv4-mapped IPv6 as IPv4, IPv6 compressed), a host name in lower case. */
function canonical(host: string): string {
  if (net.isIP(host) !== 6) return host.toLowerCase()
  let address: string
  try {
    address = new URL(`http://[${host}]`).hostname.slice(1, -1)
  } catch {
    return host.toLowerCase() // a zone index (fe80::1%eth0), which URLs do not take
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address)
  if (mapped === null) return address
  const high = Number.parseInt(mapped[1]!, 16)
  const low = Number.parseInt(mapped[2]!, 16)
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
}

/**
 * Whether two binds on one port collide, as Linux and Node's dual-stack `::` decide: `::` takes
 * every address of both families, `0.0.0.0` every IPv4 address, anything else only itself.
 */
function hostsCollide(a: string, b: string): boolean {
  const x = canonical(a)
  const y = canonical(b)
  if (x === y || x === '::' || y === '::') return true
  return (x === '0.0.0.0' && net.isIPv4(y)) || (y === '0.0.0.0' && net.isIPv4(x))
}

function collide(a: Bind, b: Bind): boolean {
  return a.port !== 0 && a.port === b.port && hostsCollide(a.host, b.host)
}

const shown = (b: Bind): string => (net.isIPv6(b.host) ? `[${b.host}]:${b.port}` : `${b.host}:${b.port}`)

const collision = (b: Bind, taken: Bind & { name: string }): string =>
  `${shown(b)} overlaps listener '${taken.name}' on ${shown(taken)}: only one of them can bind it`

export function addressConflicts(config: MoatConfig): AddressIssue[] {
  const issues: AddressIssue[] = []
  const { listeners, admin, upstream } = config
  // A broker on a loopback address is on this host; on any other address, only where Moat binds it.
  const brokerAt = (b: Bind): boolean => (isLoopback(upstream.host) || canonical(upstream.host) === canonical(b.host)) && collide(b, upstream)
  const ownAddress = (b: Bind, why: string): string => `${shown(b)} is the broker's own address (upstream ${shown(upstream)}): ${why}`
  listeners.forEach((l, i) => {
    const other = listeners.slice(0, i).find((earlier) => collide(earlier, l))
    if (other !== undefined) issues.push({ path: ['listeners', i, 'port'], message: collision(l, other) })
    if (brokerAt(l)) issues.push({ path: ['listeners', i, 'port'], message: ownAddress(l, 'Moat cannot listen where the broker does, nor proxy to itself') })
  })
  if (admin !== null) {
    const taken = listeners.find((l) => collide(l, admin))
    if (taken !== undefined) issues.push({ path: ['admin', 'port'], message: collision(admin, taken) })
    else if (brokerAt(admin)) issues.push({ path: ['admin', 'port'], message: ownAddress(admin, 'the admin endpoint cannot bind where the broker listens') })
  }
  return issues
}
