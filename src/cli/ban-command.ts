/**
 * `moat ban add|remove|list`: manages the fleet's ban list through one instance's admin endpoint
 * (`/bans`, admin/ban-api.ts); with `cluster.redis` every instance enforces a ban within a second.
 */
import { MoatError } from '../errors.js'
import { parseDuration } from '../config/units.js'
import { parseBanTarget } from '../fleet/ban-list.js'
import { adminFailure, adminRequest, checkAdminTarget, type AdminAnswer } from './admin-request.js'

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
  checkAdminTarget(cmd.admin, cmd.token, usage)
}

interface BanJson { target: string; until: string | null; reason: string; source: string; createdAt: string }

const banError = (message: string): MoatError => new BanError(message)

export async function runBanCommand(cmd: BanCommand, out: NodeJS.WritableStream): Promise<number> {
  const request = { admin: cmd.admin, token: cmd.token!, timeoutMs: 5000, error: banError }
  let reply: AdminAnswer
  if (cmd.action === 'list') reply = await adminRequest({ ...request, method: 'GET', path: '/bans' })
  else if (cmd.action === 'remove') reply = await adminRequest({ ...request, method: 'DELETE', path: `/bans?target=${encodeURIComponent(cmd.target!)}` })
  else {
    const body: Record<string, string> = { target: cmd.target! }
    if (cmd.for !== null) body.for = cmd.for
    if (cmd.reason !== null) body.reason = cmd.reason
    reply = await adminRequest({ ...request, method: 'POST', path: '/bans', body })
  }
  if (reply.status < 200 || reply.status > 299) throw adminFailure(cmd.admin, reply, banError)
  const { text, answer } = reply
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
