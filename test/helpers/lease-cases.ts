/**
 * The fleet bucket arithmetic of per-user rate leases, as cases both implementations are held to:
 * the Lua script in Redis (test/integration/redis-budget-leases.test.ts) and the primary's JS
 * buckets (test/unit/limits/fleet-buckets.test.ts). Refills are slow (credits per ms in the
 * thousandths) so the few real milliseconds between Redis calls change nothing once rounded;
 * `waitMs` is played by a simulated clock in JS and by moving the key's last update back in Redis.
 */

export interface LeaseStep {
  /** Milliseconds since the previous step (0: at once). */
  readonly waitMs?: number
  readonly debt: number
  readonly delta: number
  /** What the call answers. */
  readonly grant: number
  /** What the bucket holds after it (null: full, its key deleted). */
  readonly tokens: number | null
}

export interface LeaseCase {
  readonly name: string
  readonly capacity: number
  readonly refill: number
  readonly steps: readonly LeaseStep[]
}

export const leaseCases: readonly LeaseCase[] = [
  {
    name: 'a new bucket starts full: the debt charged, then the lease granted',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 100, delta: 300, grant: 300, tokens: 600 }],
  },
  {
    name: 'a grant is capped at what the bucket holds',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 900, delta: 0, grant: 0, tokens: 100 }, { debt: 0, delta: 300, grant: 100, tokens: 0 }],
  },
  {
    name: 'debt is charged below zero, and nothing is granted until it is paid back',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 1500, delta: 50, grant: 0, tokens: -500 }, { debt: 0, delta: 10, grant: 0, tokens: -500 }],
  },
  {
    name: 'a return is taken back; the bucket full again is deleted',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 0, delta: 400, grant: 400, tokens: 600 }, { debt: 0, delta: -400, grant: -400, tokens: null }],
  },
  {
    name: 'a return never fills the bucket past its capacity',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 100, delta: 0, grant: 0, tokens: 900 }, { debt: 0, delta: -500, grant: -500, tokens: null }],
  },
  {
    name: 'debt and a return in one call',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 0, delta: 500, grant: 500, tokens: 500 }, { debt: 300, delta: -200, grant: -200, tokens: 400 }],
  },
  {
    name: 'the bucket refills at its rate between calls',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 800, delta: 0, grant: 0, tokens: 200 }, { waitMs: 100_000, debt: 0, delta: 1000, grant: 300, tokens: 0 }],
  },
  {
    name: 'the refill stops at the capacity',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 50, delta: 0, grant: 0, tokens: 950 }, { waitMs: 100_000, debt: 0, delta: 200, grant: 200, tokens: 800 }],
  },
  {
    name: 'a debt is paid back by the refill before anything is granted',
    capacity: 1000, refill: 0.001,
    steps: [{ debt: 1100, delta: 0, grant: 0, tokens: -100 }, { waitMs: 150_000, debt: 0, delta: 100, grant: 50, tokens: 0 }],
  },
  {
    name: 'a fractional grant is answered truncated, the tokens stored rounded',
    capacity: 1000, refill: 0.0015,
    steps: [{ debt: 1000, delta: 0, grant: 0, tokens: 0 }, { waitMs: 1000, debt: 0, delta: 10, grant: 1, tokens: 0 }],
  },
]
