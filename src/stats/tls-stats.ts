/**
 * TLS handshakes completed on each listener, full or resumed (a ticket or a cached session): the
 * resumption rate operators watch after changing `tls.resumption` or scaling out. Counted once per
 * handshake; the labels are listener names from the config.
 */
export class TlsStats {
  readonly full = new Map<string, number>()
  readonly resumed = new Map<string, number>()

  countHandshake(listener: string, resumed: boolean): void {
    const counts = resumed ? this.resumed : this.full
    counts.set(listener, (counts.get(listener) ?? 0) + 1)
  }

  handshakes(listener: string, outcome: 'full' | 'resumed'): number {
    return (outcome === 'full' ? this.full : this.resumed).get(listener) ?? 0
  }
}
