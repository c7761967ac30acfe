/**
 * Loading a config: read → parse YAML (keeping positions) → validate every key (all problems at
 * once) → compile into MoatConfig → check what spans keys (addresses) and the files it names →
 * freeze. Any problem throws one ConfigError whose issues name the file, line, key and reason.
 */
import { readFileSync } from 'node:fs'
import { isMap, isNode, LineCounter, parseDocument, type Document } from 'yaml'
import type { z } from 'zod'
import { compileAcl } from './acl-compile.js'
import { addressConflicts } from './address-conflicts.js'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { compileAuth, DENY_ALL_AUTH } from './auth-schema.js'
import { compileAdminToken, compileCluster } from './cluster-schema.js'
import { compileLog } from './log-schema.js'
import { READ_FILES, skipLaterReads, type ConfigFiles } from './file-reads.js'
import { configSchema, unsupportedSections, type ConfigOutput } from './schema.js'
import { tlsFileIssues } from './tls-settings.js'
import { baseDir, compileListenerExtras, compileUpstreamTls } from './tls-schema.js'
import type { LimitsConfig, MoatConfig } from './types.js'

export { formatConfigIssue } from '../errors.js'

/** `files`: READ_FILES, or a ConfigFiles that reads none and lists them (`moat check --no-files`). */
export function loadConfig(file: string, files: ConfigFiles = READ_FILES): MoatConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new ConfigError('MOAT_ERR_CONFIG_READ', [{ file, path: '', message: `cannot read the config: ${reason}` }])
  }
  return parseConfig(text, file, files)
}

export function parseConfig(text: string, file: string, files: ConfigFiles = READ_FILES): MoatConfig {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  if (doc.errors.length > 0) {
    throw new ConfigError('MOAT_ERR_CONFIG_SYNTAX', doc.errors.map((e) => {
      const at = lines.linePos(e.pos[0])
      return { file, path: '', line: at.line, column: at.col, message: `YAML syntax: ${e.message.split('\n')[0]}` }
    }))
  }
  const value: unknown = doc.toJS()
  if (value === null || value === undefined) {
    throw new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file, path: '', message: 'the config is empty: at least `listeners` and `upstream` are required' }])
  }
  return validate(value, file, doc, lines, files)
}

/** Validates a plain object (configs built in code, tests, `moat demo`). */
export function configFromObject(value: unknown, file = ''): MoatConfig {
  return validate(value, file, null, null, READ_FILES)
}

function validate(value: unknown, file: string, doc: Document | null, lines: LineCounter | null, files: ConfigFiles): MoatConfig {
  const result = configSchema.safeParse(value)
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue) => toIssues(issue, value, file, doc, lines))
    throw new ConfigError('MOAT_ERR_CONFIG_INVALID', issues)
  }
  const config = compile(result.data, file, files)
  // Certificate, key, CA and CRL files must exist and parse: found now, not at the first handshake.
  if (!files.read) skipLaterReads(config, files)
  const later = [...addressConflicts(config), ...(files.read ? tlsFileIssues(config) : [])]
  if (later.length > 0) throw new ConfigError('MOAT_ERR_CONFIG_INVALID', later.map((i) => issueAt(file, i.path, i.message, doc, lines, false)))
  return config
}

/** The value at `path` in the raw config, or undefined where the path does not exist. */
function valueAt(root: unknown, path: Array<string | number>): unknown {
  let node = root
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string | number, unknown>)[key]
  }
  return node
}

function toIssues(issue: z.core.$ZodIssue, root: unknown, file: string, doc: Document | null, lines: LineCounter | null): ConfigIssue[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))
  // `acl` written as a plain list is read as { rules: list }: point at the list the file has.
  if (path[0] === 'acl' && path[1] === 'rules' && Array.isArray(valueAt(root, ['acl']))) path.splice(1, 1)
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const feature = path.length === 0 ? unsupportedSections[key] : undefined
      const message = feature !== undefined
        ? `'${key}' (${feature}) is not supported by this version of moat yet: refusing to start rather than run without the policy you asked for`
        : `unknown key '${key}'`
      return issueAt(file, [...path, key], message, doc, lines, true)
    })
  }
  let message = issue.message
  if (issue.code === 'invalid_type' && valueAt(root, path) === undefined) message = 'is required'
  return [issueAt(file, path, message, doc, lines, false)]
}

/** Finds the line of the node at `path` (of its key when `atKey`), or of the nearest parent that exists. */
function issueAt(file: string, path: Array<string | number>, message: string, doc: Document | null, lines: LineCounter | null, atKey: boolean): ConfigIssue {
  const dotted = path.join('.')
  if (doc === null || lines === null) return { file, path: dotted, message }
  for (let depth = path.length; depth >= 0; depth--) {
    const node = locate(doc, path.slice(0, depth), atKey && depth === path.length)
    if (node !== null) {
      const at = lines.linePos(node)
      return { file, path: dotted, line: at.line, column: at.col, message }
    }
  }
  return { file, path: dotted, message }
}

function locate(doc: Document, path: Array<string | number>, atKey: boolean): number | null {
  if (path.length === 0) return doc.contents?.range?.[0] ?? 0
  if (atKey) {
    const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true)
    if (isMap(parent)) {
      const last = path[path.length - 1]
      for (const pair of parent.items) {
        if (isNode(pair.key) && (pair.key as { value?: unknown }).value === last) return pair.key.range?.[0] ?? null
      }
    }
    return null
  }
  const node = doc.getIn(path, true)
  return isNode(node) ? node.range?.[0] ?? null : null
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
    Object.freeze(value)
  }
  return value
}

function compile(c: ConfigOutput, file: string, files: ConfigFiles): MoatConfig {
  return deepFreeze({
    file,
    listeners: c.listeners.map((l) => ({ name: l.name, protocol: l.protocol, host: l.host, port: l.port, ...compileListenerExtras(l, baseDir(file)) })),
    upstream: {
      host: c.upstream.host, port: c.upstream.port, connectTimeoutMs: c.upstream.connectTimeout,
      tls: compileUpstreamTls(c.upstream.tls, baseDir(file)), proxyProtocol: c.upstream.proxyProtocol === false ? null : c.upstream.proxyProtocol,
      ...(c.upstream.sourceAddresses.length > 0 ? { sourceAddresses: c.upstream.sourceAddresses } : {}),
    },
    admin: c.admin === undefined ? null : { host: c.admin.host, port: c.admin.port, ...compileAdminToken(c.admin, file) },
    limits: compileLimits(c.limits),
    shutdown: { gracePeriodMs: c.shutdown.gracePeriod },
    log: compileLog(c.log, file),
    acl: c.acl === undefined ? null : compileAcl(c.acl, file, files),
    auth: c.auth === undefined ? DENY_ALL_AUTH : compileAuth(c.auth, file, files),
    workers: c.workers,
    ...compiledCluster(c.cluster, file),
    ...(c.scheduling === undefined ? {} : { scheduling: c.scheduling }),
    coalescing: { waitUs: c.coalescing.wait, abovePerSecond: c.coalescing.above.count * 1000 / c.coalescing.above.perMs },
    virtualPatches: c.virtualPatches,
  })
}

/** `cluster` only when the section sets Redis (a config without it compiles as before). */
function compiledCluster(c: ConfigOutput['cluster'], file: string): { cluster?: NonNullable<MoatConfig['cluster']> } {
  const cluster = compileCluster(c, file)
  return cluster === null ? {} : { cluster }
}

function compileLimits(l: ConfigOutput['limits']): LimitsConfig {
  const u = l.perUsername
  const c = l.connections
  return {
    maxPacketSize: l.maxPacketSize,
    connectTimeoutMs: l.connectTimeout,
    maxPayload: l.maxPayload ?? null,
    payload: l.payload.map((r) => ({ topic: r.topic, max: r.max })),
    messageRate: l.messageRate ?? null,
    byteRate: l.byteRate ?? null,
    packetRate: l.packetRate ?? null,
    burstMs: l.burst,
    onExcess: l.onExcess,
    perUsername: u === undefined || (u.messageRate ?? u.byteRate ?? u.packetRate) === undefined ? null : {
      messageRate: u.messageRate ?? null,
      byteRate: u.byteRate ?? null,
      packetRate: u.packetRate ?? null,
      burstMs: u.burst,
      onExcess: u.onExcess,
      trackedUsers: u.trackedUsers,
    },
    topics: l.topics.map((t) => ({ topic: t.topic, rate: t.rate, burstMs: t.burst ?? l.burst, onExcess: t.onExcess ?? l.onExcess })),
    connections: {
      rate: c.rate ?? null,
      perAddressRate: c.perAddressRate ?? null,
      perAddress: c.perAddress ?? null,
      perUsername: c.perUsername ?? null,
      total: c.total ?? null,
      trackedAddresses: c.trackedAddresses,
    },
    maxSubscriptions: l.maxSubscriptions ?? null,
    maxInflight: l.maxInflight ?? null,
    maxKeepalive: l.maxKeepalive === undefined ? null : Math.floor(l.maxKeepalive / 1000),
    overload: {
      eventLoopLagMs: l.overload.eventLoopLag ?? null,
      memory: l.overload.memory ?? null,
      sampleMs: l.overload.sampleInterval,
    },
  }
}
