/**
 * The `cluster` section (many Moat instances sharing fleet-wide limits and bans through Redis) and
 * the admin token settings, and their compilation into ClusterConfig. Exactly one of `url`,
 * `sentinel` or `cluster` says where Redis is. Secrets: a password goes in the URL or, better, in
 * `passwordFile` (read when the store is built); neither is ever logged.
 */
import { isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { text, urlOf } from './strings.js'
import type { ClusterConfig, RedisNode } from './types.js'
import { duration } from './unit-fields.js'


const mode = z.enum(['fail-closed', 'local'], { error: 'expected fail-closed or local' })

const redisUrl = urlOf(['redis:', 'rediss:'], 'expected a redis:// or rediss:// URL')

const node = text.transform((v, ctx): RedisNode => {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(v)
  const port = m === null ? NaN : Number(m[2])
  if (m === null || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `'${v}' is not host:port` })
    return z.NEVER
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
})
const nodes = z.array(node, { error: 'expected a list of host:port' }).min(1, { error: 'at least one node' })

export const clusterSchema = z.strictObject({
  redis: z.strictObject({
    url: redisUrl.optional(),
    sentinel: z.strictObject({ name: text, nodes }).optional(),
    cluster: z.strictObject({ nodes }).optional(),
    /** sentinel / cluster modes: TLS to the Redis nodes (url mode: use rediss://). */
    tls: z.boolean({ error: 'expected true or false' }).default(false),
    passwordFile: text.optional(),
    prefix: z.string({ error: 'expected a string' }).regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'a prefix is 1-64 letters, digits, _ . : -' }).default('moat'),
    commandTimeout: duration.default(500).refine((v) => v >= 10, { error: 'must be at least 10ms' }),
    onRedisDown: z.strictObject({
      connections: mode.default('local'),
      bans: mode.default('local'),
      lockout: mode.default('local'),
    }).prefault({}),
  }).superRefine((r, ctx) => {
    const given = [r.url, r.sentinel, r.cluster].filter((v) => v !== undefined).length
    if (given !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of url, sentinel or cluster' })
  }).optional(),
})

/** `admin.token` / `admin.tokenFile`: the bearer token of the ban API. */
export const adminTokenSchema = {
  token: z.string({ error: 'expected a string' }).min(16, { error: 'a token is at least 16 characters' }).optional(),
  tokenFile: text.optional(),
  /** The URL the other instances of a fleet reach this admin endpoint at (docs/sessions.md). */
  advertise: z.string({ error: 'expected a URL like http://10.0.0.5:9464' }).refine(isAdminUrl, { error: 'expected an http:// or https:// URL like http://10.0.0.5:9464, with no path, query or credentials' }).optional(),
}

function isAdminUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === ''
      && (url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === ''
  } catch {
    return false
  }
}

export type ClusterInput = z.output<typeof clusterSchema>

function absolute(path: string, configFile: string): string {
  if (isAbsolute(path)) return path
  return resolve(configFile === '' ? process.cwd() : resolve(configFile, '..'), path)
}

export function compileCluster(c: ClusterInput | undefined, configFile: string): ClusterConfig | null {
  if (c === undefined || c.redis === undefined) return null
  const r = c.redis
  return {
    redis: {
      mode: r.url !== undefined ? 'url' : r.sentinel !== undefined ? 'sentinel' : 'cluster',
      url: r.url ?? null,
      sentinel: r.sentinel === undefined ? null : { name: r.sentinel.name, nodes: r.sentinel.nodes },
      nodes: r.cluster?.nodes ?? [],
      tls: r.tls,
      passwordFile: r.passwordFile === undefined ? null : absolute(r.passwordFile, configFile),
      prefix: r.prefix,
      commandTimeoutMs: r.commandTimeout,
      onRedisDown: { ...r.onRedisDown },
    },
  }
}

/** The token keys, only when one is set (an admin section without them compiles as before). */
export function compileAdminToken(a: { token?: string | undefined; tokenFile?: string | undefined; advertise?: string | undefined }, configFile: string): { token?: string; tokenFile?: string; advertise?: string } {
  const out: { token?: string; tokenFile?: string; advertise?: string } = {}
  if (a.token !== undefined) out.token = a.token
  if (a.advertise !== undefined) out.advertise = a.advertise.replace(/\/+$/, '')
  if (a.tokenFile !== undefined) out.tokenFile = absolute(a.tokenFile, configFile)
  return out
}
