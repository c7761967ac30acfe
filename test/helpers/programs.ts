/**
 * Programs from Debian's packages that some tests run (fail2ban-regex, systemd-analyze,
 * logrotate). Missing on a developer's machine: the test says so in one line and is skipped.
 * Under CI=true a missing program is an error, never a skip: .ci/run installs it.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

const DIRS = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin']

export function programPath(name: string, debianPackage: string): string | null {
  for (const dir of DIRS) if (existsSync(join(dir, name))) return join(dir, name)
  if (process.env.CI === 'true') throw new Error(`CI=true but ${name} is not installed (apt-get install ${debianPackage}; .ci/run installs it)`)
  console.warn(`${name} not installed: skipping the tests that run it (apt-get install ${debianPackage})`)
  return null
}
