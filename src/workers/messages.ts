/**
 * The messages a cluster primary and its workers exchange over the IPC channel (JSON). Every
 * message carries `moat` (its kind), so nothing else on the channel is mistaken for one.
 */
import type { Registry } from 'prom-client'
import type { Ban, BanKind } from '../fleet/shared-store.js'
import type { SessionPage, SessionParams } from '../admin/session-query.js'
import type { SessionRow } from '../session/session-row.js'

/** `bans`: send me the ban list (a new WorkerStore asks once, so bans made before it started reach it). */
export type StoreOp = 'acquire' | 'release' | 'take' | 'count' | 'addBan' | 'removeBan' | 'bans'

/** A worker's SharedStore call. `id` 0: no answer wanted (release). */
export interface StoreRequest {
  moat: 'store'
  id: number
  op: StoreOp
  key?: string
  max?: number
  capacity?: number
  refillPerMs?: number
  windowMs?: number
  ban?: Ban
  kind?: BanKind
  value?: string
}

/** The primary's answer; `op` and `key` come back so a late answer to an acquire can be undone. */
export interface StoreReply {
  moat: 'store-reply'
  id: number
  op: StoreOp
  key: string
  result: boolean | number | null
}

export interface BanList {
  moat: 'bans'
  bans: readonly Ban[]
}

/**
 * The session-ticket seed of a TLS listener (base64): sent to a starting worker before its config,
 * and to every worker at each rotation (workers/ticket-seed-host.ts). A secret: never logged.
 */
export interface TicketSeed {
  moat: 'ticket-seed'
  listener: string
  seed: string
}

/**
 * The sessions view (admin/sessions-api.ts) in `workers: N` mode: the primary serves the admin
 * endpoint, the sessions live in the workers. `instance`: the fleet's name of the primary, stamped
 * on every row (null without a fleet).
 */
export interface SessionsAsk {
  moat: 'sessions'
  id: number
  params: SessionParams
  instance: string | null
}

export interface KickAsk {
  moat: 'kick'
  id: number
  clientId: string
  instance: string | null
}

/**
 * A worker's lease renewal (`limits.perUsername` without cluster.redis): every call of one renewal
 * (fleet/lease-loop.ts), answered by the primary's fleet buckets (lease-host.ts) in one reply.
 */
export interface LeaseAsk {
  moat: 'leases'
  id: number
  calls: ReadonlyArray<{ key: string; capacity: number; refill: number; debt: number; delta: number }>
}

/** The grants, in the calls' order. */
export interface LeaseGrants {
  moat: 'lease-grants'
  id: number
  grants: number[]
}

/** One worker's `registry.getMetricsAsJSON()`. */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

export type PrimaryMessage =
  | { moat: 'start'; file: string; text: string }
  | { moat: 'reload' }
  | { moat: 'shutdown'; graceMs: number }
  | { moat: 'metrics'; id: number }
  | { moat: 'reopen-log' }
  | StoreReply
  | BanList
  | TicketSeed
  | SessionsAsk
  | KickAsk
  | LeaseGrants

export type WorkerMessage =
  | { moat: 'hello' }
  | { moat: 'ready'; listeners: Array<{ name: string; host: string; port: number }>; store: string; instance: string | null }
  | { moat: 'fatal'; message: string; code: string | null }
  | { moat: 'reloaded'; ok: boolean; generation: number }
  | { moat: 'metrics'; id: number; metrics: WorkerMetrics }
  | { moat: 'sessions'; id: number; page: SessionPage }
  | { moat: 'kicked'; id: number; rows: SessionRow[] }
  | StoreRequest
  | LeaseAsk

/** Something to send messages to and hear them from: `process` in a worker, a Worker or ChildProcess in the primary. */
export interface Channel {
  send(message: unknown, callback: (error: Error | null) => void): boolean
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
}

function ignore(): void {}

/** Sends without throwing: a closed channel (the peer is gone) drops the message. */
export function post(channel: Channel, message: PrimaryMessage | WorkerMessage): boolean {
  try {
    return channel.send(message, ignore)
  } catch {
    return false
  }
}

export function isMessage(value: unknown): value is { moat: string } {
  return typeof value === 'object' && value !== null && typeof (value as { moat?: unknown }).moat === 'string'
}
