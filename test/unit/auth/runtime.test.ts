import { authCheck } from '../../../src/checks/auth.js'
import { detachedCheckEnv } from '../../../src/checks/env.js'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { AuthRuntime } from '../../../src/auth/runtime.js'
import { AuthStats } from '../../../src/stats/auth-stats.js'
import { PolicyStore } from '../../../src/policy/store.js'
import type { MoatConfig } from '../../../src/config/types.js'
import { testAuth } from '../../helpers/moat.js'

const config = (maxFailures: number, maxEntries = 1000): MoatConfig => ({
  file: '', limits: { maxPacketSize: 1024, connectTimeoutMs: 1000 },
  auth: testAuth({ anonymous: true, lockout: { maxFailures, maxEntries } }),
} as MoatConfig)

describe('AuthRuntime across reloads', () => {
  it('keeps the lockout counters when the policy is swapped (and starts afresh only if their size changes)', () => {
    const runtime = new AuthRuntime(new AuthStats(), pino({ level: 'silent' }))
    const store = new PolicyStore(config(3), [authCheck], { ...detachedCheckEnv(), auth: runtime })
    const table = runtime.lockouts(1000)
    table.entries.set('a:1.2.3.4', { failures: 2, windowStart: Date.now(), bannedUntil: 0 })
    store.swap(config(5))
    expect(runtime.lockouts(1000)).toBe(table)
    expect(runtime.lockouts(1000).entries.get('a:1.2.3.4')?.failures).toBe(2)
    store.swap(config(5, 10))
    expect(runtime.lockouts(10)).not.toBe(table)
  })
})
