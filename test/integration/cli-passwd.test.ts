/**
 * `moat passwd` rewriting a password file another program reads: the file keeps its mode and its
 * owner (the compose stack's deploy/passwd is read by the container's user, uid 1000), and a new
 * file is private (0600). Owners other than one's own can only be set and kept by root: those
 * cases run when the suite runs as root, as in a container.
 */
import { chmodSync, chownSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { FileBackend } from '../../src/auth/file.js'
import { runCli } from '../helpers/cli.js'

/**
 * Setting another user's ownership needs root. As a developer without it, these cases are skipped
 * with a notice; under CI=true they always run (and fail without root: .ci/run runs as root).
 */
const asRoot = process.getuid?.() === 0
const rootCases = asRoot || process.env.CI === 'true'
if (!rootCases) console.warn('not root: skipping the moat passwd cases that give a file to another user')
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'moat-passwd-'))
  chmodSync(dir, 0o777) // the in-place case runs as another user, who writes its temporary file here
})

const mode = (file: string): number => statSync(file).mode & 0o777

async function passwd(file: string, user: string, options: { uid?: number; gid?: number } = {}): Promise<void> {
  const result = await runCli(['passwd', file, user], { stdin: `${user}-secret\n`, ...options })
  expect(result.stderr).toBe(`${file}: wrote ${user}\n`)
  expect(result.code).toBe(0)
}

/** Both users are in the file and the file backend takes it. */
function holds(file: string, users: string[]): void {
  const backend = FileBackend.load(file, 'moat.yaml', 'auth.backends.0.path')
  for (const user of users) expect(backend.has(user), user).toBe(true)
  expect(backend.size).toBe(users.length)
}

describe('moat passwd FILE USER', () => {
  it('creates a new file readable by its owner only (0600)', async () => {
    const file = join(dir, 'new')
    await passwd(file, 'dev-1')
    expect(mode(file)).toBe(0o600)
    holds(file, ['dev-1'])
  })

  it('keeps the mode of the file it rewrites (0640, 0644)', async () => {
    for (const wanted of [0o640, 0o644]) {
      const file = join(dir, `mode-${wanted.toString(8)}`)
      await passwd(file, 'dev-1')
      chmodSync(file, wanted)
      await passwd(file, 'dev-2')
      expect(mode(file)).toBe(wanted)
      holds(file, ['dev-1', 'dev-2'])
    }
  })

  /** dev-1's file given to uid and gid 1000 with `fileMode`, then dev-2 added by `as`: both in it, owner and mode as they were. */
  async function rewriteOwnedBy1000(name: string, fileMode: number, as: { uid?: number; gid?: number } = {}): Promise<{ file: string; inode: number }> {
    const file = join(dir, name)
    await passwd(file, 'dev-1')
    chownSync(file, 1000, 1000)
    chmodSync(file, fileMode)
    const inode = statSync(file).ino
    await passwd(file, 'dev-2', as)
    expect(statSync(file)).toMatchObject({ uid: 1000, gid: 1000 })
    expect(mode(file)).toBe(fileMode)
    holds(file, ['dev-1', 'dev-2'])
    return { file, inode }
  }

  it.runIf(rootCases)('as root, keeps the owner of the file it rewrites (uid 1000, the container\'s user)', async () => {
    await rewriteOwnedBy1000('container', 0o640)
  })

  it.runIf(rootCases)('a user who may write the file but does not own it rewrites it in place: owner and mode kept', async () => {
    const { file, inode } = await rewriteOwnedBy1000('shared', 0o660, { uid: 1001, gid: 1000 })
    expect(statSync(file).ino).toBe(inode)
    expect(readFileSync(file, 'utf8')).not.toContain('secret')
  })

  it('says why when the file cannot be written (MOAT_ERR_PASSWD)', async () => {
    const result = await runCli(['passwd', join(dir, 'no-such-dir', 'passwd'), 'dev-1'], { stdin: 'pw\n' })
    expect(result).toMatchObject({ code: 1, stderr: `moat: cannot write ${join(dir, 'no-such-dir', 'passwd')}: ENOENT [MOAT_ERR_PASSWD]\n` })
  })
})
