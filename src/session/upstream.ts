/**
 * Dialling the broker: plain TCP, or TLS (verified against `upstream.tls.ca`, or the system CAs;
 * `insecure: true` skips verification), optionally preceded by a PROXY protocol v2 header that
 * tells the broker the client's real address (and, for TLS clients, the TLS version and the
 * certificate CN). The header goes on the TCP connection before the TLS handshake, as the spec says.
 */
import net, { type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { ThrottledLog } from '../auth/throttled-log.js'
import type { UpstreamConfig } from '../config/types.js'
import { encodeProxyV2 } from '../net/proxy-protocol.js'
import { upstreamTlsOptions } from '../config/tls-settings.js'
import type { Logger } from '../log/logger.js'
import type { SessionState } from '../client/session-state.js'

/** The event that means "ready for MQTT bytes" on a socket from dialUpstream(). */
export function upstreamReadyEvent(config: UpstreamConfig): 'connect' | 'secureConnect' {
  return config.tls === undefined || config.tls === null ? 'connect' : 'secureConnect'
}

/** What a session needs from its broker connection: a TCP or TLS socket is one; tests pass an in-memory Duplex. */
export interface UpstreamSocket extends Duplex {
  setNoDelay(noDelay?: boolean): unknown
}

/** Opens the broker connection; it is ready for MQTT bytes on upstreamReadyEvent(config). */
export type Dialer = (config: UpstreamConfig, state: SessionState, local: LocalEnd) => UpstreamSocket

/** Where the client reached Moat (the PROXY header's destination); a socket's local address when it has one. */
export interface LocalEnd {
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
}

/** Round-robin position in `upstream.sourceAddresses`. */
let nextSource = 0

/**
 * `new net.Socket()` then `connect(options)`, not `net.connect(options)`: Node's Socket constructor
 * copies the options it is given (`{ ...options }`) and adds its defaults to the copy, and that
 * copy of an object with properties gets a hidden class of its own, never shared: new V8 maps per
 * dial, each making Node's stream code build new inline-cache handlers, garbage for the major GCs.
 * Without options the constructor's copy starts empty.
 */
export function dialUpstream(config: UpstreamConfig, state: SessionState, local: LocalEnd): Socket {
  const sources = config.sourceAddresses
  const raw = new net.Socket().connect(sources === undefined || sources.length === 0
    ? { host: config.host, port: config.port }
    : { host: config.host, port: config.port, localAddress: sources[nextSource++ % sources.length]! })
  if (config.proxyProtocol === 'v2') {
    // Queued before the connection is up; written first, before any TLS or MQTT byte.
    raw.write(encodeProxyV2({
      remoteAddress: state.remoteAddress,
      remotePort: state.remotePort,
      localAddress: local.localAddress ?? '0.0.0.0',
      localPort: local.localPort ?? 0,
      tlsVersion: state.tlsVersion,
      certificateCn: state.certificate?.cn ?? null,
    }))
  }
  const t = config.tls
  if (t === undefined || t === null) return raw
  let options: tls.ConnectionOptions
  try {
    options = upstreamTlsOptions(t) // read at config load; only a config built in code reads here
  } catch (err) {
    raw.destroy(err as Error) // 'error' comes on a later tick, after the session's handlers are on
    return raw
  }
  const secure = tls.connect({
    ...options,
    socket: raw,
    host: config.host,
    ...(t.servername !== null ? { servername: t.servername } : net.isIP(config.host) === 0 ? { servername: config.host } : {}),
  })
  // Errors of the TCP connection itself (refused, reset while connecting) end the TLS socket too.
  raw.on('error', forwardError.bind(secure))
  return secure
}

function forwardError(this: tls.TLSSocket, err: Error): void {
  if (!this.destroyed) this.destroy(err)
}

/**
 * Failed dials of one Moat: while the broker is down every connecting client fails one, so the
 * first is logged at error at once and the rest are summed up once per interval (ThrottledLog);
 * `moat_upstream_connect_failures_total` still counts each.
 */
export class DialFailureLog {
  private readonly log: ThrottledLog

  constructor(logger: Logger, intervalMs?: number) {
    this.log = new ThrottledLog(logger, intervalMs)
  }

  /** `sessionLog`: the failing session's logger, whose bindings the first line keeps. */
  failed(sessionLog: Logger, detail: string): void {
    this.log.error('upstream_unavailable', { event: 'upstream_unavailable', error: detail }, 'broker unreachable', sessionLog)
  }

  /** Logs the summary still due (shutdown). */
  close(): void {
    this.log.close()
  }
}
