/**
 * libjemalloc preloaded as docs/tuning.md shows (Debian: libjemalloc2). Missing on
 * a developer's machine: the tests that need it say so in one line and are skipped; under CI=true a
 * missing library is an error (.ci/run installs it).
 */
import { execFileSync } from 'node:child_process'

/** The two variables of docs/tuning.md (and of the commented line in deploy/systemd/moat.service). */
export const JEMALLOC_ENV = { LD_PRELOAD: 'libjemalloc.so.2', MALLOC_CONF: 'background_thread:true' } as const

function preloadable(): boolean {
  try {
    const maps = execFileSync('cat', ['/proc/self/maps'], { encoding: 'utf8', env: { ...process.env, ...JEMALLOC_ENV }, stdio: ['ignore', 'pipe', 'ignore'] })
    return maps.includes('/libjemalloc')
  } catch {
    return false
  }
}

export function jemallocAvailable(): boolean {
  if (process.platform !== 'linux') return false
  if (preloadable()) return true
  if (process.env.CI === 'true') throw new Error('CI=true but libjemalloc.so.2 cannot be preloaded (apt-get install libjemalloc2; .ci/run installs it)')
  console.warn('libjemalloc.so.2 not installed: skipping the tests that preload it (apt-get install libjemalloc2)')
  return false
}
