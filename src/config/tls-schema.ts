/**
 * Config keys for transports: listener kinds (mqtt, mqtts, ws, wss), their TLS, WebSocket and
 * PROXY protocol settings, and TLS / PROXY protocol towards the broker. Kept apart from schema.ts
 * so that file stays a table of sections. Whether the files named here exist and parse is checked
 * after the schema (`tlsFileIssues` in tls-settings.ts), with the same file/key/reason errors.
 */
import { isAbsolute, resolve, dirname } from 'node:path'
import { z } from 'zod'
import { addressList } from '../net/address-list.js'
import { parseDuration } from './units.js'
import { compileResumption, tlsResumption } from './tls-resumption.js'
import type { ListenerConfig, ListenerTlsConfig, UpstreamTlsConfig } from './types.js'

/** How often the WebSocket gateway pings each client by default; one missed pong terminates it. */
export const WS_PING_INTERVAL_MS = 30_000

const file = z.string({ error: 'expected a file path' }).min(1, { error: 'must not be empty' })

export const listenerProtocols = ['mqtt', 'mqtts', 'ws', 'wss'] as const

export const listenerProtocol = z.string({ error: "expected 'mqtt', 'mqtts', 'ws' or 'wss'" }).superRefine((value, ctx) => {
  if (!(listenerProtocols as readonly string[]).includes(value)) ctx.addIssue({ code: 'custom', message: `unknown protocol '${value}' (mqtt, mqtts, ws or wss)` })
}).transform((v) => v as (typeof listenerProtocols)[number])

const sniEntry = z.strictObject({
  servername: z.string({ error: 'expected a host name' }).regex(/^(\*\.)?[A-Za-z0-9.-]{1,253}$/, { error: 'expected a host name, or *.domain' }),
  cert: file,
  key: file,
  passphrase: z.string().optional(),
})

export const listenerTls = z.strictObject({
  cert: file,
  key: file,
  passphrase: z.string({ error: 'expected a string' }).optional(),
  ca: file.optional(),
  clientCert: z.enum(['none', 'optional', 'required'], { error: 'expected none, optional or required' }).default('none'),
  crl: z.union([file, z.array(file)], { error: 'expected a file path or a list of them' }).optional(),
  minVersion: z.string({ error: 'expected TLSv1.2 or TLSv1.3' }).default('TLSv1.2').superRefine((v, ctx) => {
    if (v === 'TLSv1.2' || v === 'TLSv1.3') return
    ctx.addIssue({
      code: 'custom',
      message: /^TLSv1(\.[01])?$/.test(v) ? `${v} is refused: TLS 1.0 and 1.1 are broken; use TLSv1.2 or TLSv1.3` : 'expected TLSv1.2 or TLSv1.3',
    })
  }).transform((v) => v as 'TLSv1.2' | 'TLSv1.3'),
  ciphers: z.string({ error: 'expected an OpenSSL cipher list' }).min(1).optional(),
  ecdhCurve: z.string({ error: "expected curve names, e.g. 'X25519:P-256'" }).min(1).optional(),
  sni: z.array(sniEntry, { error: 'expected a list of { servername, cert, key }' }).optional(),
  resumption: tlsResumption.optional(),
}, { error: 'expected { cert, key, ... }' })

/** Keys a listener has beyond name/protocol/host/port. */
export const listenerExtras = {
  tls: listenerTls.optional(),
  path: z.string({ error: 'expected an HTTP path' }).regex(/^\/[^\s?#]*$/, { error: "an HTTP path starts with '/' and has no spaces, '?' or '#'" }).optional(),
  origins: z.array(z.string().min(1), { error: 'expected a list of origins, e.g. https://app.example.com' }).optional(),
  pingInterval: z.unknown().optional().transform((value, ctx): number | undefined => {
    if (value === undefined) return undefined
    try {
      const ms = parseDuration(value)
      if (ms < 100) ctx.addIssue({ code: 'custom', message: 'must be at least 100ms' })
      return ms
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
      return z.NEVER
    }
  }),
  proxyProtocol: z.boolean({ error: 'expected true or false' }).default(false),
  trustedProxies: z.array(z.string(), { error: 'expected a list of CIDRs' }).optional(),
}

interface ListenerShape {
  protocol: string
  tls?: { clientCert: string; ca?: string; crl?: unknown } | undefined
  path?: string | undefined
  origins?: string[] | undefined
  pingInterval?: number | undefined
  proxyProtocol: boolean
  trustedProxies?: string[] | undefined
}

/** Rules across a listener's keys (which keys fit which protocol). */
export function checkListener(l: ListenerShape, ctx: z.RefinementCtx): void {
  const secure = l.protocol === 'mqtts' || l.protocol === 'wss'
  const web = l.protocol === 'ws' || l.protocol === 'wss'
  if (secure && l.tls === undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: `an ${l.protocol} listener needs tls: { cert, key }` })
  if (!secure && l.tls !== undefined) ctx.addIssue({ code: 'custom', path: ['tls'], message: `a ${l.protocol} listener has no TLS (use ${l.protocol === 'ws' ? 'wss' : 'mqtts'})` })
  if (!web && l.path !== undefined) ctx.addIssue({ code: 'custom', path: ['path'], message: 'only ws and wss listeners have a path' })
  if (!web && l.origins !== undefined) ctx.addIssue({ code: 'custom', path: ['origins'], message: 'only ws and wss listeners check Origin' })
  if (!web && l.pingInterval !== undefined) ctx.addIssue({ code: 'custom', path: ['pingInterval'], message: 'only ws and wss listeners ping (MQTT keepalive covers the others)' })
  if (l.tls !== undefined && l.tls.clientCert !== 'none' && l.tls.ca === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tls', 'ca'], message: `clientCert: ${l.tls.clientCert} needs ca (the CA bundle client certificates are verified against)` })
  }
  if (l.tls !== undefined && l.tls.crl !== undefined && l.tls.clientCert === 'none') {
    ctx.addIssue({ code: 'custom', path: ['tls', 'crl'], message: 'crl applies to client certificates: set clientCert to optional or required' })
  }
  if (l.proxyProtocol && (l.trustedProxies === undefined || l.trustedProxies.length === 0)) {
    ctx.addIssue({ code: 'custom', path: ['trustedProxies'], message: 'proxyProtocol: true needs trustedProxies (the load balancers whose headers are believed)' })
  }
  if (!l.proxyProtocol && l.trustedProxies !== undefined) ctx.addIssue({ code: 'custom', path: ['trustedProxies'], message: 'trustedProxies applies only with proxyProtocol: true' })
  l.trustedProxies?.forEach((entry, i) => {
    try {
      addressList([entry])
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['trustedProxies', i], message: (err as Error).message })
    }
  })
}

export const upstreamExtras = {
  tls: z.strictObject({
    ca: file.optional(),
    cert: file.optional(),
    key: file.optional(),
    passphrase: z.string().optional(),
    servername: z.string().min(1).optional(),
    insecure: z.boolean({ error: 'expected true or false' }).default(false),
  }).superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert === undefined ? 'cert' : 'key'], message: 'a client certificate needs both cert and key' })
    if (t.insecure && t.ca !== undefined) ctx.addIssue({ code: 'custom', path: ['insecure'], message: 'insecure: true skips verification, so ca would be ignored: choose one' })
  }).optional(),
  proxyProtocol: z.union([z.literal('v2'), z.literal(false)], { error: "expected 'v2' or false" }).default(false),
}

type ListenerTlsInput = z.output<typeof listenerTls>
type UpstreamTlsInput = NonNullable<z.output<typeof upstreamExtras.tls>>

function at(dir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dir, path)
}

/** The directory relative paths resolve against: the config file's, or the working directory. */
export function baseDir(configFile: string): string {
  return configFile === '' ? process.cwd() : dirname(resolve(configFile))
}

export function compileListenerExtras(l: { protocol: ListenerConfig['protocol'] } & { tls?: ListenerTlsInput | undefined; path?: string | undefined; origins?: string[] | undefined; pingInterval?: number | undefined; proxyProtocol: boolean; trustedProxies?: string[] | undefined }, dir: string): Omit<ListenerConfig, 'name' | 'protocol' | 'host' | 'port'> {
  const web = l.protocol === 'ws' || l.protocol === 'wss'
  return {
    tls: l.tls === undefined ? null : compileListenerTls(l.tls, dir),
    path: web ? l.path ?? '/mqtt' : '',
    origins: l.origins ?? null,
    pingIntervalMs: web ? l.pingInterval ?? WS_PING_INTERVAL_MS : 0,
    proxyProtocol: l.proxyProtocol,
    trustedProxies: l.trustedProxies ?? [],
  }
}

function compileListenerTls(t: ListenerTlsInput, dir: string): ListenerTlsConfig {
  const crl = t.crl === undefined ? [] : Array.isArray(t.crl) ? t.crl : [t.crl]
  return {
    cert: at(dir, t.cert),
    key: at(dir, t.key),
    passphrase: t.passphrase ?? null,
    ca: t.ca === undefined ? null : at(dir, t.ca),
    clientCert: t.clientCert,
    crl: crl.map((f) => at(dir, f)),
    minVersion: t.minVersion,
    ciphers: t.ciphers ?? null,
    ecdhCurve: t.ecdhCurve ?? null,
    sni: (t.sni ?? []).map((s) => ({ servername: s.servername.toLowerCase(), cert: at(dir, s.cert), key: at(dir, s.key), passphrase: s.passphrase ?? null })),
    // Absent: the defaults (DEFAULT_TLS_RESUMPTION); a config without the section compiles as before.
    ...(t.resumption === undefined ? {} : { resumption: compileResumption(t.resumption) }),
  }
}

export function compileUpstreamTls(t: UpstreamTlsInput | undefined, dir: string): UpstreamTlsConfig | null {
  if (t === undefined) return null
  return {
    ca: t.ca === undefined ? null : at(dir, t.ca),
    cert: t.cert === undefined ? null : at(dir, t.cert),
    key: t.key === undefined ? null : at(dir, t.key),
    passphrase: t.passphrase ?? null,
    servername: t.servername ?? null,
    insecure: t.insecure,
  }
}
