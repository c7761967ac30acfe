/**
 * The ban replica compiled for lookups: one BlockList for every address / CIDR ban, and maps for
 * user names and client ids. Built when the ban set changes (or the earliest ban expires), never
 * per connection; a lookup is a BlockList check or a map get.
 */
import net, { type BlockList } from 'node:net'
import { addressList, inAddressList } from '../net/address-list.js'
import type { Ban, BanKind } from './shared-store.js'

export class BanList {
  static readonly EMPTY = new BanList([])

  readonly size: number
  /** Epoch ms when the first of these bans ends (Infinity: none ends). */
  readonly nextExpiry: number
  private readonly all: BlockList | null
  private readonly byAddress: Array<{ list: BlockList; ban: Ban }>
  private readonly usernames = new Map<string, Ban>()
  private readonly clientIds = new Map<string, Ban>()

  constructor(bans: readonly Ban[]) {
    this.size = bans.length
    let next = Infinity
    const addresses: string[] = []
    this.byAddress = []
    for (const ban of bans) {
      if (ban.until !== null && ban.until < next) next = ban.until
      if (ban.kind === 'username') this.usernames.set(ban.value, ban)
      else if (ban.kind === 'clientId') this.clientIds.set(ban.value, ban)
      else {
        try {
          this.byAddress.push({ list: addressList([ban.value]), ban })
          addresses.push(ban.value)
        } catch {
          // A malformed entry written to the store by hand: ignored (validated on the way in).
        }
      }
    }
    this.nextExpiry = next
    this.all = addresses.length === 0 ? null : addressList(addresses)
  }

  address(address: string): Ban | null {
    if (this.all === null || !inAddressList(this.all, address)) return null
    for (const { list, ban } of this.byAddress) if (inAddressList(list, address)) return ban
    return null
  }

  username(username: string | null): Ban | null {
    return username === null || this.usernames.size === 0 ? null : this.usernames.get(username) ?? null
  }

  clientId(clientId: string): Ban | null {
    return this.clientIds.size === 0 ? null : this.clientIds.get(clientId) ?? null
  }

  /** The first ban matching a client (address, then user name, then client id). */
  match(address: string, username: string | null, clientId: string): Ban | null {
    return this.address(address) ?? this.username(username) ?? this.clientId(clientId)
  }
}

/**
 * Parses a ban target as `moat ban` and the admin API take it: an IP address or CIDR,
 * `user:NAME`, or `client:ID`. Throws a message naming the target when it is none of these.
 */
export function parseBanTarget(target: string): { kind: BanKind; value: string } {
  if (target.startsWith('user:') && target.length > 5) return { kind: 'username', value: target.slice(5) }
  if (target.startsWith('client:') && target.length > 7) return { kind: 'clientId', value: target.slice(7) }
  const [address] = target.split('/')
  if (address !== undefined && net.isIP(address) !== 0) {
    addressList([target]) // throws on a bad prefix length
    return { kind: 'address', value: target }
  }
  throw new Error(`'${target}' is not an address, a CIDR, user:NAME or client:ID`)
}

/** The ban target as written on the command line. */
export function banTarget(ban: { kind: BanKind; value: string }): string {
  return ban.kind === 'username' ? `user:${ban.value}` : ban.kind === 'clientId' ? `client:${ban.value}` : ban.value
}
