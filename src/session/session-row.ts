/**
 * One session as the sessions view of the admin endpoint shows it (`GET /sessions`): who is
 * connected, from where, since when, over what. Plain JSON (it crosses the workers' IPC and the
 * fleet's HTTP fan-out as it is) and never a secret: no password, token, claim or payload.
 * Read only when an operator asks, never on the per-packet path.
 */
import { Phase } from './phase.js'
import type { Session } from './session.js'

export interface SessionRow {
  readonly clientId: string
  /** The identity the auth check established (the CONNECT user name until then); null: anonymous. */
  readonly username: string | null
  readonly address: string
  readonly port: number
  readonly listener: string
  readonly transport: string
  /** '3.1', '3.1.1' or '5.0'. */
  readonly protocol: string
  /** 'open': the broker accepted the CONNECT; 'connecting': the CONNECT is being checked or passed on. */
  readonly state: 'connecting' | 'open'
  /** When the client's connection was accepted (ISO 8601). */
  readonly connectedSince: string
  /** The keepalive of the CONNECT, in seconds. */
  readonly keepalive: number
  readonly tls: { readonly version: string; readonly subject: string | null } | null
  /** Filters the broker granted the client. */
  readonly subscriptions: number
  /** Bytes read from the client and written to it. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Worker 1..N in `workers: N` mode. */
  readonly worker?: number
  /** The instance (RedisStore instance id) holding the session, in a fleet. */
  readonly instance?: string
}

const PROTOCOLS: Readonly<Record<number, string>> = { 3: '3.1', 4: '3.1.1', 5: '5.0' }

/** Whether the sessions view covers `session`: its CONNECT has been read and it is not closing. */
export function listed(session: Session): boolean {
  return session.phase >= Phase.Checking && session.phase < Phase.Closing
}

/** Where a row comes from, in a fleet (`instance`) and in `workers: N` mode (`worker`). */
export interface RowStamp {
  readonly instance?: string
  readonly worker?: number
}

export function sessionRow(session: Session, stamp: RowStamp = {}): SessionRow {
  const s = session.state
  return {
    clientId: s.clientId,
    username: s.username,
    address: s.remoteAddress,
    port: s.remotePort,
    listener: s.listener,
    transport: s.transport,
    protocol: PROTOCOLS[s.version] ?? String(s.version),
    state: s.connected ? 'open' : 'connecting',
    connectedSince: new Date(session.startedAt).toISOString(),
    keepalive: s.keepalive,
    tls: s.tlsVersion === null ? null : { version: s.tlsVersion, subject: s.certificate?.subject ?? null },
    subscriptions: s.subscriptions.size,
    bytesIn: session.client.bytesRead,
    bytesOut: session.toClient.bytes,
    ...stamp,
  }
}
