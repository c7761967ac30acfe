/** Moat in this process, in front of a test broker, on a free port. */
import { pino } from 'pino'
import { configFromObject } from '../../src/config/load.js'
import type { MoatConfig } from '../../src/config/types.js'
import { Moat } from '../../src/moat.js'

export interface MoatOverrides {
  limits?: Partial<MoatConfig['limits']>
  upstream?: Partial<MoatConfig['upstream']>
  admin?: MoatConfig['admin']
  shutdown?: Partial<MoatConfig['shutdown']>
  acl?: MoatConfig['acl']
}

/** Every limit at its default (rates and quotas off), as a loaded config would have them. */
const defaultLimits = configFromObject({ listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1 } }).limits

/** A `limits` section written as in a config file (`messageRate: '100/s'`), compiled by the real loader. */
export function limitsFrom(section: Record<string, unknown>): MoatConfig['limits'] {
  return configFromObject({ listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1 }, limits: { maxPacketSize: '4MiB', connectTimeout: '5s', ...section } }).limits
}

export function testConfig(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): MoatConfig {
  return {
    file: '',
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: upstream.host, port: upstream.port, connectTimeoutMs: 2000, ...overrides.upstream },
    admin: overrides.admin ?? null,
    limits: { ...defaultLimits, maxPacketSize: 4 * 1024 * 1024, connectTimeoutMs: 5000, ...overrides.limits },
    shutdown: { gracePeriodMs: 0, ...overrides.shutdown },
    log: { level: 'silent' },
    acl: overrides.acl ?? null,
  }
}

/** Logs go nowhere unless MOAT_TEST_LOG=debug (or another level) is set. */
export async function startMoat(upstream: { host: string; port: number }, overrides: MoatOverrides = {}): Promise<Moat> {
  const level = process.env.MOAT_TEST_LOG ?? 'silent'
  const moat = new Moat(testConfig(upstream, overrides), { logger: pino({ level }) })
  await moat.start()
  return moat
}
