/**
 * The `auth` section of the config schema (zod, strict objects), and its compilation into
 * AuthConfig: paths resolved against the config file's directory, key files read, defaults filled.
 * The password file itself is read when the policy is built (auth/file.ts), so a reload re-reads it.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { text, urlOf } from './strings.js'
import { ConfigError } from '../errors.js'
import { READ_FILES, type ConfigFiles } from './file-reads.js'
import type { AuthBackendConfig, AuthCacheConfig, AuthConfig } from './types.js'
import { duration } from './unit-fields.js'


const count = (min: number) => z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' })
  .min(min, { error: `must be at least ${min}` })
const oneOrMany = z.union([text, z.array(text).min(1)], { error: 'expected a string or a list of strings' })
const httpUrl = urlOf(['http:', 'https:'], 'expected an http:// or https:// URL')

const cache = z.union([
  z.literal(false),
  z.strictObject({
    ttl: duration.default(60_000),
    negativeTtl: duration.default(5_000),
    max: count(1).default(10_000),
  }),
], { error: 'expected false or { ttl, negativeTtl, max }' })

const fileBackend = z.strictObject({
  type: z.literal('file'),
  path: text,
  cache: cache.default(false),
})

const httpBackend = z.strictObject({
  type: z.literal('http'),
  url: httpUrl,
  timeout: duration.default(2_000).refine((v) => v > 0, { error: 'must be above zero' }),
  connections: count(1).default(16),
  maxPending: count(0).default(1_000),
  headers: z.record(z.string(), z.string(), { error: 'expected a mapping of header names to strings' }).default({}),
  cache: cache.default({ ttl: 30_000, negativeTtl: 5_000, max: 10_000 }),
})

const jwtBackend = z.strictObject({
  type: z.literal('jwt'),
  secret: text.optional(),
  secretFile: text.optional(),
  publicKey: text.optional(),
  jwksUrl: httpUrl.optional(),
  jwksCacheMaxAge: duration.default(600_000),
  jwksTimeout: duration.default(5_000),
  algorithms: z.array(text).min(1).optional(),
  audience: oneOrMany.optional(),
  issuer: oneOrMany.optional(),
  clockTolerance: duration.default(0),
  usernameClaim: text.default('sub'),
  claims: z.array(text).default([]),
  groupsClaim: text.optional(),
  cache: cache.default(false),
}).superRefine((b, ctx) => {
  const keys = [b.secret, b.secretFile, b.publicKey, b.jwksUrl].filter((v) => v !== undefined).length
  if (keys !== 1) ctx.addIssue({ code: 'custom', message: 'exactly one of secret, secretFile, publicKey, jwksUrl is required' })
})

const certificateBackend = z.strictObject({
  type: z.literal('certificate'),
  usernameFrom: z.enum(['cn', 'subject', 'san-dns', 'san-email', 'san-uri', 'fingerprint'], { error: 'expected one of cn, subject, san-dns, san-email, san-uri, fingerprint' }).default('cn'),
})

const backend = z.discriminatedUnion('type', [fileBackend, httpBackend, jwtBackend, certificateBackend], { error: 'expected a backend with type file, http, jwt or certificate' })

const clientId = z.strictObject({
  pattern: text.refine((v) => {
    try {
      new RegExp(v, 'u')
      return true
    } catch {
      return false
    }
  }, { error: 'not a valid regular expression' }).optional(),
  maxLength: count(1).max(65535, { error: 'at most 65535' }).default(256),
  bind: z.enum(['none', 'username', 'username-prefix'], { error: 'expected none, username or username-prefix' }).default('none'),
  separator: z.string({ error: 'expected a string of separator characters' })
    .regex(/^[!"$%&'()*,\-.:;<=>?@[\\\]^_`{|}~]{1,16}$/, { error: 'expected 1 to 16 ASCII punctuation characters other than + # / (e.g. ":" or "-")' })
    .default(':'),
  takeover: z.enum(['same-identity', 'allow'], { error: 'expected same-identity or allow' }).default('same-identity'),
})

/** The lockout of a config that sets none (`moat audit --target` keeps its failed logins under it). */
export const DEFAULT_LOCKOUT = { maxFailures: 10, window: 60_000, ban: 300_000 } as const

const lockout = z.union([
  z.literal(false),
  z.strictObject({
    maxFailures: count(1).default(DEFAULT_LOCKOUT.maxFailures),
    window: duration.default(DEFAULT_LOCKOUT.window).refine((v) => v > 0, { error: 'must be above zero' }),
    ban: duration.default(DEFAULT_LOCKOUT.ban).refine((v) => v > 0, { error: 'must be above zero' }),
    per: z.array(z.enum(['address', 'username'], { error: 'expected address or username' })).min(1).default(['address', 'username']),
    maxEntries: count(1).default(100_000),
    reply: z.enum(['bad-credentials', 'banned'], { error: 'expected bad-credentials or banned' }).default('bad-credentials'),
  }),
], { error: 'expected false or { maxFailures, window, ban, per, maxEntries, reply }' })

const upstreamCredentials = z.union([
  z.enum(['passthrough', 'strip']),
  z.strictObject({ username: text, password: z.string().optional(), passwordFile: text.optional() })
    .refine((v) => v.password === undefined || v.passwordFile === undefined, { error: 'give password or passwordFile, not both' }),
], { error: "expected passthrough, strip or { username, password }" })

export const authSchema = z.strictObject({
  anonymous: z.boolean({ error: 'expected true or false' }).default(false),
  backends: z.array(backend, { error: 'expected a list of backends' }).default([]),
  timeout: duration.default(5_000).refine((v) => v > 0, { error: 'must be above zero' }),
  clientId: clientId.default({ maxLength: 256, bind: 'none', separator: ':', takeover: 'same-identity' }),
  lockout: lockout.default({ ...DEFAULT_LOCKOUT, per: ['address', 'username'], maxEntries: 100_000, reply: 'bad-credentials' }),
  upstreamCredentials: upstreamCredentials.default('passthrough'),
  unknownCredentials: z.enum(['refuse', 'broker'], { error: 'expected refuse or broker' }).default('refuse'),
  badCredentialsReply: z.enum(['bad-credentials', 'not-authorized'], { error: 'expected bad-credentials or not-authorized' }).default('bad-credentials'),
}).superRefine((a, ctx) => {
  // Stripped or replaced credentials would let the broker judge the shared account, not the client: anyone would pass.
  if (a.unknownCredentials === 'broker' && a.upstreamCredentials !== 'passthrough') {
    ctx.addIssue({ code: 'custom', path: ['unknownCredentials'], message: 'broker needs upstreamCredentials: passthrough (the broker must see the credentials the client sent)' })
  }
})

export type AuthInput = z.output<typeof authSchema>

/** The auth policy of a config without an `auth` section: nobody gets in (fail closed). */
export const DENY_ALL_AUTH: AuthConfig = compileAuth(authSchema.parse({}), '')

function compileCache(c: false | { ttl: number; negativeTtl: number; max: number }): AuthCacheConfig | null {
  return c === false ? null : { ttlMs: c.ttl, negativeTtlMs: c.negativeTtl, max: c.max }
}

function readKeyFile(file: string, path: string, key: string, files: ConfigFiles): string {
  if (files.skip(key, path)) return ''
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file, path: key, message: `cannot read ${path}: ${reason}` }])
  }
}

const asList = (v: string | string[] | undefined): string[] | null => v === undefined ? null : Array.isArray(v) ? v : [v]

/** `files` says whether the key files are read (READ_FILES) or only listed: then their values are empty. */
export function compileAuth(a: AuthInput, file: string, files: ConfigFiles = READ_FILES): AuthConfig {
  const base = file === '' ? process.cwd() : dirname(resolve(file))
  const at = (p: string): string => resolve(base, p)
  const backends = a.backends.map((b, i): AuthBackendConfig => {
    const key = `auth.backends.${i}`
    switch (b.type) {
      case 'file':
        return { type: 'file', path: at(b.path), cache: compileCache(b.cache) }
      case 'http':
        return { type: 'http', url: b.url, timeoutMs: b.timeout, connections: b.connections, maxPending: b.maxPending, headers: { ...b.headers }, cache: compileCache(b.cache) }
      case 'jwt': {
        const secret = b.secret ?? (b.secretFile === undefined ? null : readKeyFile(file, at(b.secretFile), `${key}.secretFile`, files).trim())
        const publicKey = b.publicKey === undefined ? null : readKeyFile(file, at(b.publicKey), `${key}.publicKey`, files)
        const algorithms = b.algorithms ?? (secret !== null ? ['HS256', 'HS384', 'HS512'] : ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'])
        return {
          type: 'jwt', secret, publicKey, jwksUrl: b.jwksUrl ?? null, jwksCacheMaxAgeMs: b.jwksCacheMaxAge, jwksTimeoutMs: b.jwksTimeout,
          algorithms, audience: asList(b.audience), issuer: asList(b.issuer), clockToleranceMs: b.clockTolerance,
          usernameClaim: b.usernameClaim, claims: [...b.claims], groupsClaim: b.groupsClaim ?? null, cache: compileCache(b.cache),
        }
      }
      case 'certificate':
        return { type: 'certificate', usernameFrom: b.usernameFrom }
    }
  })
  const u = a.upstreamCredentials
  const upstream = typeof u === 'string' ? u : {
    username: u.username,
    password: u.password ?? (u.passwordFile === undefined ? null : readKeyFile(file, at(u.passwordFile), 'auth.upstreamCredentials.passwordFile', files).replace(/\r?\n$/, '')),
  }
  return {
    anonymous: a.anonymous,
    backends,
    timeoutMs: a.timeout,
    clientId: { pattern: a.clientId.pattern ?? null, maxLength: a.clientId.maxLength, bind: a.clientId.bind, separator: a.clientId.separator, takeover: a.clientId.takeover },
    lockout: a.lockout === false ? null : {
      maxFailures: a.lockout.maxFailures, windowMs: a.lockout.window, banMs: a.lockout.ban,
      per: [...new Set(a.lockout.per)], maxEntries: a.lockout.maxEntries, reply: a.lockout.reply,
    },
    upstreamCredentials: upstream,
    unknownCredentials: a.unknownCredentials,
    badCredentialsReply: a.badCredentialsReply,
  }
}
