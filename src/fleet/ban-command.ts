/**
 * `moat ban add|remove|list`: manages the fleet's ban list through one instance's admin endpoint
 * (`/bans`, admin/ban-api.ts); with `cluster.redis` every instance enforces a ban within a second.
 */
import { MoatError } from '../errors.js'
import { parseDuration } from '../config/units.js'
import { parseBanTarget } from './ban-list.js'

export interface BanCommand {
  readonly action: 'add' | 'remove' | 'list'
  readonly target: string | null
  readonly admin: string
  readonly token: string | null
  readonly for: string | null
  readonly reason: string | null
  readonly json: boolean
}

class BanError extends MoatError {
  constructor(message: string) {
    super('MOAT_ERR_BAN', message)
  }
}

/** Checks the arguments before anything is sent (a usage error names what is wrong). */
export function checkBanArgs(cmd: BanCommand, usage: (message: string) => Error): void {
  if (cmd.action !== 'list' && cmd.target === null) throw usage(`'moat ban ${cmd.action}' needs a TARGET: an address, a CIDR, user:NAME or client:ID`)
  if (cmd.action === 'list' && cmd.target !== null) throw usage(`unexpected argument '${cmd.target}'`)
  if (cmd.target !== null) {
    try {
      parseBanTarget(cmd.target)
    } catch (err) {
      throw usage((err as Error).message)
    }
  }
  if (cmd.action !== 'add' && (cmd.for !== null || cmd.reason !== null)) throw usage('--for and --reason go with `moat ban add`')
  if (cmd.for !== null) {
    try {
      if (parseDuration(cmd.for) <= 0) throw new Error('must be above zero')
    } catch (err) {
      throw usage(`--for: ${(err as Error).message}`)
    }
  }
  try {
    const url = new URL(cmd.admin)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http')
  } catch {
    throw usage(`--admin must be the admin endpoint's URL, like http://127.0.0.1:9464, got '${cmd.admin}'`)
  }
  if (cmd.token === null) throw usage('a token is required: --token TOKEN or the MOAT_ADMIN_TOKEN environment variable')
}

interface BanJson { target: string; until: string | null; reason: string; source: string; createdAt: string }

export async function runBanCommand(cmd: BanCommand, out: NodeJS.WritableStream): Promise<number> {
  const base = cmd.admin.replace(/\/+$/, '')
  const headers: Record<string, string> = { authorization: `Bearer ${cmd.token!}` }
  let url = `${base}/bans`
  let init: RequestInit
  if (cmd.action === 'list') init = { method: 'GET', headers }
  else if (cmd.action === 'remove') {
    url += `?target=${encodeURIComponent(cmd.target!)}`
    init = { method: 'DELETE', headers }
  } else {
    const body: Record<string, string> = { target: cmd.target! }
    if (cmd.for !== null) body.for = cmd.for
    if (cmd.reason !== null) body.reason = cmd.reason
    init = { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }
  }
  let res: Response
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) })
  } catch (err) {
    const inner = (err as { cause?: { code?: string; message?: string } }).cause
    const cause = inner?.code ?? inner?.message ?? (err as Error).message
    throw new BanError(`cannot reach the admin endpoint at ${base}: ${cause}`)
  }
  const text = await res.text()
  let answer: Record<string, unknown> = {}
  try {
    answer = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON: reported by status below
  }
  if (!res.ok) {
    const why = typeof answer.error === 'string' ? answer.error : `HTTP ${res.status}`
    throw new BanError(`${base}: ${why}`)
  }
  if (cmd.json) {
    out.write(text)
    return 0
  }
  if (cmd.action === 'list') {
    const bans = (answer.bans as BanJson[] | undefined) ?? []
    if (bans.length === 0) out.write('no bans\n')
    for (const b of bans) out.write(`${b.target}\tuntil ${b.until ?? 'removed'}\t${b.source}${b.reason === '' ? '' : '\t' + b.reason}\n`)
  } else if (cmd.action === 'add') {
    const b = answer.ban as BanJson
    out.write(`banned ${b.target} until ${b.until ?? 'removed'}\n`)
  } else {
    out.write(`removed the ban on ${cmd.target!}\n`)
  }
  return 0
}
