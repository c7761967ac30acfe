/**
 * What `moat audit` reports: findings with a severity, where they are (a config key path, or the
 * probed target), what an attacker could do, and the fix; as text for a person or JSON for tools.
 */
export const severities = ['critical', 'high', 'medium', 'low', 'info'] as const
export type Severity = (typeof severities)[number]

export interface Finding {
  /** Stable identifier, e.g. `anonymous-access`, for tools and suppression lists. */
  readonly id: string
  readonly severity: Severity
  /** The config key path (`listeners.0`), or the target (`tcp://host:port`). */
  readonly where: string
  readonly title: string
  /** What an attacker could do because of it. */
  readonly risk: string
  readonly fix: string
}

export interface Report {
  /** What was audited: the config file, or the target address. */
  readonly subject: string
  readonly findings: readonly Finding[]
}

export function rank(s: Severity): number {
  return severities.indexOf(s)
}

/** Findings at or above `threshold`, most severe first. */
export function atLeast(findings: readonly Finding[], threshold: Severity): Finding[] {
  return findings.filter((f) => rank(f.severity) <= rank(threshold))
}

export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => rank(a.severity) - rank(b.severity) || a.where.localeCompare(b.where))
}

export function formatText(report: Report): string {
  const findings = sortFindings(report.findings)
  if (findings.length === 0) return `${report.subject}: no findings\n`
  const counts = severities.map((s) => [s, findings.filter((f) => f.severity === s).length] as const).filter(([, n]) => n > 0)
  const lines = [`${report.subject}: ${findings.length} finding(s) (${counts.map(([s, n]) => `${n} ${s}`).join(', ')})`, '']
  for (const f of findings) {
    lines.push(`[${f.severity.toUpperCase()}] ${f.title} (${f.id})`)
    lines.push(`  where: ${f.where}`)
    lines.push(`  risk:  ${f.risk}`)
    lines.push(`  fix:   ${f.fix}`)
    lines.push('')
  }
  return lines.join('\n')
}

export function formatJson(report: Report): string {
  return JSON.stringify({ subject: report.subject, findings: sortFindings(report.findings) }, null, 2) + '\n'
}
