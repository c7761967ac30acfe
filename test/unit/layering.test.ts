/**
 * The layering of src/ (docs/architecture.md): each folder (or top-level file) may import from its
 * own folder and from the layers below it, never from its own layer or above. Type-only imports
 * count too, so the folders form no cycle even on paper.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative, sep } from 'node:path'
import { describe, expect, it } from 'vitest'

/** Lowest first. Units on one line know nothing of each other. */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'protocol'],
  ['stats', 'client'],
  ['net'],
  ['config'],
  ['log'],
  ['acl', 'auth', 'limits', 'scheduling', 'heap-trim', 'c-allocator'],
  ['checks'],
  ['policy'],
  ['fleet'],
  ['session', 'listeners'],
  ['metrics', 'admin', 'audit', 'certs'],
  ['moat'],
  ['workers', 'demo', 'index'],
  ['cli'],
]

const SRC = new URL('../../src/', import.meta.url).pathname

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

/** The unit a source file belongs to: its top folder under src/, or its own name for a top-level file. */
function unitOf(file: string): string {
  const parts = relative(SRC, file).split(sep)
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '')
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g

interface Edge {
  from: string
  to: string
}

function edges(): Edge[] {
  const out: Edge[] = []
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(IMPORT)) {
      const target = normalize(join(dirname(file), (m[1] ?? m[2])!)).replace(/\.js$/, '.ts')
      out.push({ from: file, to: target })
    }
  }
  return out
}

const rank = new Map<string, number>()
LAYERS.forEach((units, i) => units.forEach((u) => rank.set(u, i)))

describe('layering of src/', () => {
  const all = edges()

  it('reads the imports of every source file', () => {
    expect(sourceFiles(SRC).length).toBeGreaterThan(100)
    expect(all.length).toBeGreaterThan(300)
  })

  it('places every folder and top-level file in a layer', () => {
    const units = new Set(sourceFiles(SRC).map(unitOf))
    expect([...units].filter((u) => !rank.has(u)).sort()).toEqual([])
  })

  it('imports only downwards: from the same unit or a lower layer', () => {
    const wrong = all
      .filter((e) => {
        const a = unitOf(e.from)
        const b = unitOf(e.to)
        return a !== b && !(rank.get(b)! < rank.get(a)!)
      })
      .map((e) => `${relative(SRC, e.from)} -> ${relative(SRC, e.to)}`)
    expect(wrong).toEqual([])
  })
})
