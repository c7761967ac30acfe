/**
 * The grammar of placeholders in ACL topic patterns (`{client_id}`, `{username}`, `{cert.cn}`,
 * `{claims.NAME}`), for validating a config; acl/placeholders.ts substitutes them per session.
 */
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
