/**
 * A worker's session-ticket seeds: the primary's (workers/ticket-seed-host.ts), so every worker seals
 * and opens tickets under the same keys. The primary makes, rotates or fetches them from Redis; a
 * worker only applies what it receives.
 */
import { SEED_BYTES, type TicketSeeds } from '../listeners/ticket-keys.js'

export class WorkerTicketSeeds implements TicketSeeds {
  /** The last seed received per listener name (names come from the primary's config: bounded). */
  private readonly seeds = new Map<string, Buffer>()
  private readonly appliers = new Map<string, (seed: Buffer) => void>()

  /** A `ticket-seed` message from the primary. */
  receive(listener: string, encoded: string): void {
    const seed = Buffer.from(encoded, 'base64')
    if (seed.length !== SEED_BYTES) return
    this.seeds.set(listener, seed)
    this.appliers.get(listener)?.(seed)
  }

  /** The period is the primary's business; the seed comes before the config, so it is known here. */
  watch(listener: string, _rotateMs: number, apply: (seed: Buffer) => void): void {
    this.appliers.set(listener, apply)
    const seed = this.seeds.get(listener)
    if (seed !== undefined) apply(seed)
  }

  unwatch(listener: string): void {
    this.appliers.delete(listener)
  }
}
