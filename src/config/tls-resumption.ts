/**
 * `tls.resumption` of an mqtts/wss listener: session tickets (TLS 1.2 and 1.3) under a key shared
 * by every worker and, with `cluster.redis`, every instance; how long a ticket lives and how often
 * its key is replaced; the TLS 1.2 session-id cache. docs/listeners-and-tls.md says what each does.
 */
import { z } from 'zod'
import type { TlsResumptionConfig } from './types.js'
import { duration } from './unit-fields.js'

const SECOND = 1000
const HOUR = 3_600_000

/** RFC 8446 4.6.1: a TLS 1.3 ticket lives at most seven days. */
export const MAX_TICKET_LIFETIME_MS = 7 * 24 * HOUR
/** Above this a cache of sessions (a few KiB each) is not a cache but a liability. */
export const MAX_SESSION_CACHE = 1_000_000

/**
 * Resumption on; a ticket resumes for 2 h under a key that lives 12 h: most tickets live their whole
 * lifetime (only those issued in a key's last 2 h are cut short), and a key that leaks exposes the
 * tickets of its 12 h.
 */
export const DEFAULT_TLS_RESUMPTION: TlsResumptionConfig = Object.freeze({
  enabled: true,
  lifetimeMs: 2 * HOUR,
  rotateMs: 12 * HOUR,
  // Off: listening for the cache's events costs every handshake (TLS 1.3 too) a detour through
  // JavaScript, and clients that resume TLS 1.2 by session id and not by ticket are rare.
  sessionCache: 0,
})

export const tlsResumption = z.strictObject({
  enabled: z.boolean({ error: 'expected true or false' }).default(true),
  lifetime: duration.default(DEFAULT_TLS_RESUMPTION.lifetimeMs).superRefine((ms, ctx) => {
    if (ms < SECOND || ms % SECOND !== 0) ctx.addIssue({ code: 'custom', message: 'expected whole seconds, at least 1s (TLS counts ticket lifetimes in seconds)' })
    else if (ms > MAX_TICKET_LIFETIME_MS) ctx.addIssue({ code: 'custom', message: 'at most 168h: TLS 1.3 clients drop tickets older than seven days' })
  }),
  rotate: duration.default(DEFAULT_TLS_RESUMPTION.rotateMs).refine((ms) => ms >= SECOND, { error: 'must be at least 1s' }),
  sessionCache: z.number({ error: 'expected a number of sessions (0 turns the cache off)' }).int({ error: 'expected a whole number' })
    .min(0, { error: 'must be 0 (off) or more' }).max(MAX_SESSION_CACHE, { error: `at most ${MAX_SESSION_CACHE}` }).default(DEFAULT_TLS_RESUMPTION.sessionCache),
}, { error: 'expected { enabled, lifetime, rotate, sessionCache }' }).superRefine((r, ctx) => {
  // One key per server (Node): a ticket dies with its key, so a shorter period would cut every lifetime short.
  if (r.rotate >= SECOND && r.rotate < r.lifetime) ctx.addIssue({ code: 'custom', path: ['rotate'], message: `must be at least lifetime (${r.lifetime / SECOND}s): a ticket stops resuming when its key is rotated` })
})

export type TlsResumptionInput = z.output<typeof tlsResumption>

export function compileResumption(r: TlsResumptionInput): TlsResumptionConfig {
  return { enabled: r.enabled, lifetimeMs: r.lifetime, rotateMs: r.rotate, sessionCache: r.sessionCache }
}
