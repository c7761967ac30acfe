/** Moat in this process, in front of a test broker, on a free port. */
import { pino } from 'pino'
import { compileAuth, authSchema, type AuthInput } from '../../src/config/auth-schema.js'
import type { MoatConfig } from '../../src/config/types.js'
import { Moat } from '../../src/moat.js'

export interface MoatOverrides {
  limits?: Partial<MoatConfig['limits']>
  upstream?: Partial<MoatConfig['upstream']>
  admin?: MoatConfig['admin']
  shutdown?: Partial<MoatConfig['shutdown']>
  /** The `auth` section as written in YAML (defaults applied). Default: anonymous clients admitted. */
  auth?: Record<string, unknown>
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
    limits: { maxPacketSize: 4 * 1024 * 1024, connectTimeoutMs: 5000, ...overrides.limits },
    shutdown: { gracePeriodMs: 0, ...overrides.shutdown },
    log: { level: 'silent' },
    // Relay tests test relaying, not auth: they admit anonymous clients (the product default is not to).
    auth: testAuth(overrides.auth ?? { anonymous: true }),
  }
}

/** Logs go nowhere unless MOAT_TEST_LOG=debug (or another level) is set. */
export async function startMoat(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): Promise<Moat> {
  const level = process.env.MOAT_TEST_LOG ?? 'silent'
  const moat = new Moat(testConfig(upstream, overrides), { logger: pino({ level }) })
  await moat.start()
  return moat
}
