/**
 * Placeholders in ACL topic patterns: `{client_id}`, `{username}`, `{cert.cn}`, `{claims.NAME}`.
 * They are replaced once per session (never per packet) by the client's identity. A value that
 * is empty, or holds `+`, `#` or `/`, cannot be substituted: an allow rule with it never matches,
 * so a crafted user name or client id cannot widen a rule (`{username}` = `#`).
 */
import type { SessionState } from '../client/session-state.js'
import { hasPlaceholder, PLACEHOLDER } from '../config/placeholders.js'

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
