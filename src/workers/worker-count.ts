/**
 * How many workers a config asks for, and whether this process is one of them: small on purpose,
 * so the command line loads node:cluster and the cluster code only when `workers` is above 1.
 */
import { availableParallelism } from 'node:os'
import type { MoatConfig } from '../config/types.js'

/** The environment variable that tells a process it is Moat worker number N. */
export const WORKER_ENV = 'MOAT_WORKER'

/** The number of workers a config asks for: `auto` is one per core. */
export function workerCount(config: MoatConfig): number {
  const w = config.workers ?? 1
  return w === 'auto' ? availableParallelism() : w
}

/** This process's worker number when the cluster primary forked it, else null. */
export function workerId(): number | null {
  const raw = process.env[WORKER_ENV]
  if (raw === undefined || typeof process.send !== 'function') return null
  const id = Number(raw)
  return Number.isInteger(id) && id > 0 ? id : null
}
