/**
 * Placeholders in ACL topic patterns: `{client_id}`, `{username}`, `{cert.cn}`, `{claims.NAME}`.
 * They are replaced once per session (never per packet) by the client's identity. A value that
 * is empty, or holds `+`, `#` or `/`, cannot be substituted: an allow rule with it never matches,
 * so a crafted user name or client id cannot widen a rule (`{username}` = `#`).
 */
import type { SessionState } from '../client/session-state.js'

export const PLACEHOLDER = /\{([^{}]*)\}/g
const KNOWN = /^(client_id|username|cert\.cn|claims\.[A-Za-z0-9_.-]+)$/

/** The placeholders a pattern uses that Moat does not know, for config validation. */
export function unknownPlaceholders(pattern: string): string[] {
  const unknown: string[] = []
  for (const m of pattern.matchAll(PLACEHOLDER)) if (!KNOWN.test(m[1]!)) unknown.push(m[0])
  return unknown
}

/** The pattern with every placeholder replaced by a harmless literal, to validate its shape. */
export function patternShape(pattern: string): string {
  return pattern.replace(PLACEHOLDER, 'x')
}

export function hasPlaceholder(pattern: string): boolean {
  return pattern.includes('{')
}

function valueOf(name: string, s: SessionState): string | null {
  if (name === 'client_id') return s.clientId
  if (name === 'username') return s.username
  if (name === 'cert.cn') return s.certificate?.cn ?? null
  if (name.startsWith('claims.')) return s.claims?.[name.slice(7)] ?? null
  return null
}

function substitutable(value: string | null): value is string {
  if (value === null || value.length === 0) return false
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 0x2b || c === 0x23 || c === 0x2f || c === 0) return false // + # / NUL
  }
  return true
}

/** The pattern with the session's identity filled in, or null when a value cannot be substituted. */
export function substitute(pattern: string, s: SessionState): string | null {
  if (!hasPlaceholder(pattern)) return pattern
  let ok = true
  const bound = pattern.replace(PLACEHOLDER, (_m, name: string) => {
    const value = valueOf(name, s)
    if (!substitutable(value)) {
      ok = false
      return ''
    }
    return value
  })
  return ok ? bound : null
}
