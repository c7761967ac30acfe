/**
 * The `file` backend: a password file in Mosquitto's `mosquitto_passwd` format (`user:hash` per
 * line, `#` comments), so the file of the broker being hardened can be reused as it is; plus the
 * scrypt lines `moat passwd` writes. Read once per policy generation (a reload re-reads it).
 *
 * A user in the file: allow on the right password, deny on a wrong one (or none sent). A user not
 * in the file (or no user name): no opinion, so the next backend is asked. An unknown user still
 * costs one hash computation, so timing does not tell which user names exist.
 */
import { readFileSync } from 'node:fs'
import { ConfigError } from '../errors.js'
import { ALLOW, DENY, NO_OPINION, type AuthBackend, type AuthRequest, type AuthResult } from './backend.js'
import { parsePasswordHash, verifyPassword, type PasswordHash } from './password-hash.js'

/** Largest password file accepted (a typo pointing at a huge file must not eat the memory). */
const MAX_FILE_BYTES = 64 * 1024 * 1024

/** Verified against for unknown users: the same cost as a Mosquitto 2.x default hash. */
const DUMMY: PasswordHash = {
  kind: 'pbkdf2-sha512', iterations: 101,
  salt: Buffer.from('bW9hdC1kdW1teS1zYWx0', 'base64'), hash: Buffer.alloc(64),
}

export function parsePasswordFile(text: string, where: (line: number, message: string) => Error): Map<string, PasswordHash> {
  const users = new Map<string, PasswordHash>()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw where(i + 1, 'expected user:hash')
    const user = line.slice(0, colon)
    const hash = parsePasswordHash(line.slice(colon + 1))
    if (hash === null) throw where(i + 1, `unsupported or malformed hash for user '${user}' (expected $7$, $6$ or $scrypt$)`)
    if (users.has(user)) throw where(i + 1, `user '${user}' appears twice`)
    users.set(user, hash)
  }
  return users
}

export class FileBackend implements AuthBackend {
  readonly type = 'file'
  private readonly users: Map<string, PasswordHash>

  constructor(users: Map<string, PasswordHash>) {
    this.users = users
  }

  /** Reads `path`; problems throw a ConfigError naming the config file, key and password-file line. */
  static load(path: string, configFile: string, key: string): FileBackend {
    const fail = (message: string): ConfigError => new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file: configFile, path: key, message }])
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
      throw fail(`cannot read the password file ${path}: ${reason}`)
    }
    if (text.length > MAX_FILE_BYTES) throw fail(`the password file ${path} is larger than 64 MiB`)
    return new FileBackend(parsePasswordFile(text, (line, message) => fail(`${path}:${line}: ${message}`)))
  }

  /** Whether `username` has a line in the file. */
  has(username: string): boolean {
    return this.users.has(username)
  }

  get size(): number {
    return this.users.size
  }

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    if (req.username === null) return NO_OPINION
    const hash = this.users.get(req.username)
    if (hash === undefined) {
      await verifyPassword(DUMMY, req.password ?? Buffer.alloc(0))
      return NO_OPINION
    }
    if (req.password === null) return DENY
    return (await verifyPassword(hash, req.password)) ? ALLOW : DENY
  }

  cacheKey(req: AuthRequest): string {
    return JSON.stringify([req.username, req.password?.toString('base64') ?? null])
  }
}
