/** Moat in this process, in front of a test broker, on a free port. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { hashPassword } from '../../src/auth/password-hash.js'
import { configFromObject } from '../../src/config/load.js'
import { compileAuth, authSchema, type AuthInput } from '../../src/config/auth-schema.js'
import type { MoatConfig } from '../../src/config/types.js'
import { Moat } from '../../src/moat.js'
import { DEFAULT_COALESCING } from '../../src/net/read-coalescing.js'

export interface MoatOverrides {
  limits?: Partial<MoatConfig['limits']>
  upstream?: Partial<MoatConfig['upstream']>
  admin?: MoatConfig['admin']
  shutdown?: Partial<MoatConfig['shutdown']>
  acl?: MoatConfig['acl']
  /** The `auth` section as written in YAML (defaults applied). Default: anonymous clients admitted. */
  auth?: Record<string, unknown>
  /** Read coalescing; default: the product's (DEFAULT_COALESCING). */
  coalescing?: MoatConfig['coalescing']
  /** Virtual patches; default: all on. */
  virtualPatches?: MoatConfig['virtualPatches']
}

/** Every limit at its default (rates and quotas off), as a loaded config would have them. */
const defaultLimits = configFromObject({ listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1 } }).limits

/** A `limits` section written as in a config file (`messageRate: '100/s'`), compiled by the real loader. */
export function limitsFrom(section: Record<string, unknown>): MoatConfig['limits'] {
  return configFromObject({ listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1 }, limits: { maxPacketSize: '4MiB', connectTimeout: '5s', ...section } }).limits
}

/** An auth section as a config file would have it, compiled (paths relative to `dir`). */
export function testAuth(auth: Record<string, unknown>, dir = ''): MoatConfig['auth'] {
  return compileAuth(authSchema.parse(auth) as AuthInput, dir === '' ? '' : `${dir}/moat.yaml`)
}

export function testConfig(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): MoatConfig {
  return {
    file: '',
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: upstream.host, port: upstream.port, connectTimeoutMs: 2000, ...overrides.upstream },
    admin: overrides.admin ?? null,
    limits: { ...defaultLimits, maxPacketSize: 4 * 1024 * 1024, connectTimeoutMs: 5000, ...overrides.limits },
    shutdown: { gracePeriodMs: 0, ...overrides.shutdown },
    log: { level: 'silent', format: 'json', file: null },
    acl: overrides.acl ?? null,
    // Relay tests test relaying, not auth: they admit anonymous clients (the product default is not to).
    auth: testAuth(overrides.auth ?? { anonymous: true }),
    coalescing: overrides.coalescing ?? DEFAULT_COALESCING,
    ...(overrides.virtualPatches === undefined ? {} : { virtualPatches: overrides.virtualPatches }),
  }
}

/** Logs go nowhere unless MOAT_TEST_LOG=debug (or another level) is set. */
export async function startMoat(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): Promise<Moat> {
  const level = process.env.MOAT_TEST_LOG ?? 'silent'
  const moat = new Moat(testConfig(upstream, overrides), { logger: pino({ level }) })
  await moat.start()
  return moat
}

/**
 * An `auth` section with a real password file in which every one of `users` has the password
 * `password` (scrypt with small parameters: fast for tests), for tests that need named users.
 */
export async function passwordAuth(users: readonly string[], password = 'pw'): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-users-'))
  const lines: string[] = []
  for (const user of users) lines.push(`${user}:${await hashPassword(Buffer.from(password), { N: 1024, r: 8, p: 1 })}`)
  const path = join(dir, 'passwd')
  writeFileSync(path, lines.join('\n') + '\n')
  return { backends: [{ type: 'file', path }] }
}
