import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { describe, expect, it } from 'vitest'

/** The README is the front door: what Moat is and how to start; the rest lives in docs/. */
const README_MAX_LINES = 250

/** Tracked Markdown a reader navigates: the root files, docs/ and bench/. */
function trackedDocs(): string[] {
  const out = execFileSync('git', ['ls-files', '*.md'], { encoding: 'utf8' })
  return out.split('\n').filter((f) => f !== '' && (!f.includes('/') || f.startsWith('docs/') || f.startsWith('bench/')))
}

/** The text outside fenced code blocks and inline code, line by line (a link in code is an example). */
function proseLines(text: string): string[] {
  const lines: string[] = []
  let fence: string | null = null
  for (const line of text.split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)
    if (marker !== null) {
      if (fence === null) fence = marker[1]![0]!
      else if (marker[1]![0] === fence) fence = null
      lines.push('')
      continue
    }
    lines.push(fence === null ? line.replace(/(`+)[^`]*?\1/g, '') : '')
  }
  return lines
}

/** GitHub's anchor for a heading: lower case, punctuation dropped except '-' and '_', spaces to '-'. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text only
    .replace(/[`*]/g, '')
    .trim()
    .toLowerCase()
  return text.replace(/[^\p{L}\p{M}\p{N} _-]/gu, '').replace(/ /g, '-')
}

/** Every anchor a file's headings get, duplicates numbered as GitHub numbers them (-1, -2, …). */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  let fence: string | null = null
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)
    if (marker !== null) {
      if (fence === null) fence = marker[1]![0]!
      else if (marker[1]![0] === fence) fence = null
      continue
    }
    const heading = fence === null ? /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line) : null
    if (heading === null) continue
    const base = slug(heading[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    result.add(n === 0 ? base : `${base}-${n}`)
  }
  return result
}

/** Link targets of a Markdown file: inline `[text](target)` and reference definitions `[ref]: target`. */
function linkTargets(text: string): Array<{ line: number; target: string }> {
  const found: Array<{ line: number; target: string }> = []
  proseLines(text).forEach((line, i) => {
    for (const m of line.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)/g)) {
      found.push({ line: i + 1, target: m[1]!.replace(/^<|>$/g, '') })
    }
    const definition = /^\s{0,3}\[[^\]]+\]:\s*(\S+)/.exec(line)
    if (definition !== null) found.push({ line: i + 1, target: definition[1]!.replace(/^<|>$/g, '') })
  })
  return found
}

/** What is wrong with one link, or null when it resolves. */
function brokenReason(from: string, target: string): string | null {
  if (/^(https?:|mailto:)/i.test(target)) return null
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return `unexpected scheme in '${target}'`
  const hash = target.indexOf('#')
  const pathPart = decodeURI(hash < 0 ? target : target.slice(0, hash))
  const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1))
  const resolved = pathPart === '' ? from : normalize(join(dirname(from), pathPart))
  if (resolved.startsWith('..')) return `'${target}' leaves the repository`
  if (!existsSync(resolved)) return `'${target}': no such file or directory (${resolved})`
  if (anchor === null || !resolved.endsWith('.md') || statSync(resolved).isDirectory()) return null
  return anchors(resolved).has(anchor) ? null : `'${target}': ${resolved} has no heading with the anchor #${anchor}`
}

function countLines(file: string): number {
  const text = readFileSync(file, 'utf8')
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0)
}

describe('documentation links', () => {
  it('the README, the contributor guide and the architecture document exist', () => {
    const missing = ['README.md', 'CONTRIBUTING.md', 'docs/architecture.md'].filter((f) => !existsSync(f))
    expect(missing, `missing: ${missing.join(', ')}`).toEqual([])
  })

  it(`README.md stays at most ${README_MAX_LINES} lines`, () => {
    expect(countLines('README.md')).toBeLessThanOrEqual(README_MAX_LINES)
  })

  it('every relative link and #anchor in the docs resolves', () => {
    const files = trackedDocs()
    expect(files).toContain('README.md')
    expect(files.some((f) => f.startsWith('docs/'))).toBe(true)
    const broken: string[] = []
    for (const file of files) {
      for (const { line, target } of linkTargets(readFileSync(file, 'utf8'))) {
        const reason = brokenReason(file, target)
        if (reason !== null) broken.push(`${file}:${line}: ${reason}`)
      }
    }
    expect(broken, `broken links:\n${broken.join('\n')}`).toEqual([])
  })

  it('anchors follow GitHub: lower case, punctuation dropped, spaces to hyphens', () => {
    expect(slug('Auditing a deployment: `moat audit`')).toBe('auditing-a-deployment-moat-audit')
    expect(slug('Topic allow-lists (`acl`)')).toBe('topic-allow-lists-acl')
    expect(slug('GC pauses: `--no-memory-reducer`')).toBe('gc-pauses---no-memory-reducer')
    expect(slug('Multi-core: `workers`')).toBe('multi-core-workers')
    expect(slug('max_inflight and [links](x.md)')).toBe('max_inflight-and-links')
  })
})
