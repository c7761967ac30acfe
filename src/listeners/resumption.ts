/**
 * Session resumption of one TLS listener (`tls.resumption`): the options each of its secure contexts
 * is made with, its ticket key, and its TLS 1.2 session-id cache. A reload makes a new secure
 * context (with a random ticket key: Node's), so `apply` runs after every one, before any handshake
 * can use it.
 */
import { constants, createHash, randomBytes } from 'node:crypto'
import type tls from 'node:tls'
import type { TlsResumptionConfig } from '../config/types.js'
import type { Logger } from '../log/logger.js'
import { SessionCache } from './session-cache.js'
import { ticketKey, type TicketSeeds } from './ticket-keys.js'

/** Options of every secure context of listener `name` beside its certificates (createServer, setSecureContext). */
export function resumptionOptions(name: string, config: TlsResumptionConfig, fingerprint: Buffer): tls.TlsOptions {
  return {
    sessionTimeout: config.lifetimeMs / 1000,
    // A session resumes only on the listener and files it was made with. Node's default context is a
    // hash of the command line, which differs between instances of a fleet.
    sessionIdContext: createHash('sha256').update(name).update('\0').update(fingerprint).digest('hex').slice(0, 32),
    // Without tickets OpenSSL would still resume TLS 1.2 sessions from a cache: there is none then.
    ...(config.enabled ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }),
  }
}

type NewSession = (id: Buffer, data: Buffer, done: () => void) => void
type ResumeSession = (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => void

export class ListenerResumption {
  private readonly name: string
  private server: tls.Server
  private readonly seeds: TicketSeeds
  private readonly log: Logger
  private fingerprint: Buffer = Buffer.alloc(0)
  private watching = false
  private cache: SessionCache | null = null
  private readonly onNewSession: NewSession = (id, data, done) => {
    this.cache?.store(id, data)
    done()
  }

  private readonly onResumeSession: ResumeSession = (id, done) => {
    done(null, this.cache?.lookup(id) ?? null)
  }

  constructor(name: string, server: tls.Server, seeds: TicketSeeds, log: Logger) {
    this.name = name
    this.server = server
    this.seeds = seeds
    this.log = log
  }

  /** Entries in the session-id cache (tests, and a look at its size). */
  get cachedSessions(): number {
    return this.cache?.size ?? 0
  }

  /** Applies `config` for the files of `fingerprint` to the server's current secure context. */
  apply(config: TlsResumptionConfig, fingerprint: Buffer): void {
    const newFiles = !fingerprint.equals(this.fingerprint)
    this.fingerprint = fingerprint
    this.applyCache(config, newFiles)
    if (config.enabled) {
      // Sets the key at once (the seed is known, or comes with the first message of the primary).
      this.seeds.watch(this.name, config.rotateMs, (seed) => this.useSeed(seed))
      this.watching = true
      return
    }
    if (this.watching) this.seeds.unwatch(this.name)
    this.watching = false
    this.server.setTicketKeys(randomBytes(48)) // tickets are off; none made before may resume either
  }

  /** The listener serves its new connections from `server` now; `apply` follows, which sets its ticket key. */
  moveTo(server: tls.Server): void {
    if (this.cache !== null) {
      this.server.off('newSession', this.onNewSession)
      this.server.off('resumeSession', this.onResumeSession)
      server.on('newSession', this.onNewSession)
      server.on('resumeSession', this.onResumeSession)
    }
    this.server = server
  }

  close(): void {
    if (this.watching) this.seeds.unwatch(this.name)
    this.watching = false
    this.applyCache(null, true)
  }

  private useSeed(seed: Buffer): void {
    this.server.setTicketKeys(ticketKey(seed, this.name, this.fingerprint))
    this.log.debug({ event: 'tls_ticket_key' }, 'session ticket key set')
  }

  /** Keeps, replaces or drops the cache; sessions made with other files are never resumed. */
  private applyCache(config: TlsResumptionConfig | null, newFiles: boolean): void {
    const wanted = config !== null && config.enabled && config.sessionCache > 0
    const cache = this.cache
    if (wanted && cache !== null && !newFiles && cache.max === config.sessionCache && cache.lifetimeMs === config.lifetimeMs) return
    this.cache = wanted ? new SessionCache(config.sessionCache, config.lifetimeMs) : null
    // Node parses every ClientHello while these are listened to: only with a cache.
    if (wanted && cache === null) {
      this.server.on('newSession', this.onNewSession)
      this.server.on('resumeSession', this.onResumeSession)
    } else if (!wanted && cache !== null) {
      this.server.off('newSession', this.onNewSession)
      this.server.off('resumeSession', this.onResumeSession)
    }
  }
}
