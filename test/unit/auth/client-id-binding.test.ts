/**
 * `auth.clientId.bind`: which client ids a user name owns. Under `username-prefix` the user name
 * must end at a separator, so `dev1` never owns `dev10`, and a user name holding a separator owns
 * nothing (one client id, one owner); the separator set is validated by the schema.
 */
import { describe, expect, it } from 'vitest'
import { clientIdBound } from '../../../src/auth/client-id-binding.js'
import { authSchema } from '../../../src/config/auth-schema.js'

// [user name, client id, bound under username-prefix with ':', with '-', with '-_']
const prefixCases: Array<[string | null, string, boolean, boolean, boolean]> = [
  ['dev1', 'dev1', true, true, true],
  ['dev1', 'dev10', false, false, false],
  ['dev1', 'dev1x', false, false, false],
  ['dev1', 'dev1:sensor', true, false, false],
  ['dev1', 'dev1-sensor', false, true, true],
  ['dev1', 'dev1_sensor', false, false, true],
  ['dev1', 'dev1:', true, false, false],
  ['dev1', 'dev', false, false, false],
  ['dev1', 'xdev1:a', false, false, false],
  ['dev1', 'DEV1:a', false, false, false],
  ['dev1', 'dev2:a', false, false, false],
  // A user name holding a separator owns no client id, not even itself: `dev1` may already own it.
  ['dev1:x', 'dev1:x', false, true, true],
  ['dev1-x', 'dev1-x', true, false, false],
  ['dev1-x', 'dev1-x-a', false, false, false],
  ['dev1-x', 'dev1-x:a', true, false, false],
  // An anonymous client owns no client id; an empty one (the broker assigns it) is exempt.
  [null, 'dev1', false, false, false],
  [null, '', true, true, true],
  ['dev1', '', true, true, true],
]

describe('client-id binding: username-prefix ends the user name at a separator', () => {
  for (const [user, id, colon, dash, dashUnderscore] of prefixCases) {
    it(`${user ?? '(anonymous)'} as '${id}': ':' ${colon}, '-' ${dash}, '-_' ${dashUnderscore}`, () => {
      expect(clientIdBound('username-prefix', ':', user, id)).toBe(colon)
      expect(clientIdBound('username-prefix', '-', user, id)).toBe(dash)
      expect(clientIdBound('username-prefix', '-_', user, id)).toBe(dashUnderscore)
    })
  }

  it('no client id has two owners: the owner is the part before its first separator', () => {
    const users = ['dev1', 'dev10', 'dev1-x', 'dev', 'dev-1', 'a', 'a-b-c']
    const ids = ['dev1', 'dev10', 'dev1-x', 'dev1-x-y', 'dev-1', 'dev-1-a', 'a-b', 'a-b-c', 'a-b-c-d', 'dev10-a']
    for (const id of ids) {
      const owners = users.filter((u) => clientIdBound('username-prefix', '-', u, id))
      expect(owners.length, `${id}: ${owners.join(', ')}`).toBeLessThanOrEqual(1)
      if (owners.length === 1) expect(owners[0]).toBe(id.split('-')[0])
    }
  })

  it('bind: username is equality; bind: none binds nothing', () => {
    expect(clientIdBound('username', ':', 'dev1', 'dev1')).toBe(true)
    expect(clientIdBound('username', ':', 'dev1', 'dev1:a')).toBe(false)
    expect(clientIdBound('username', ':', 'dev1:a', 'dev1:a')).toBe(true) // equality is never ambiguous
    expect(clientIdBound('username', ':', null, 'dev1')).toBe(false)
    expect(clientIdBound('none', ':', 'dev1', 'someone-else')).toBe(true)
    expect(clientIdBound('none', ':', null, 'anything')).toBe(true)
  })
})

describe('auth.clientId.separator in the schema', () => {
  const separator = (value: unknown): string | null => {
    const r = authSchema.safeParse({ clientId: { bind: 'username-prefix', separator: value } })
    return r.success ? r.data.clientId.separator : null
  }

  it('defaults to ":"', () => {
    expect(authSchema.parse({ clientId: { bind: 'username-prefix' } }).clientId.separator).toBe(':')
    expect(authSchema.parse({}).clientId.separator).toBe(':')
  })

  it('takes 1 to 16 ASCII punctuation characters other than + # /', () => {
    for (const ok of [':', '-', '_', '.', '@', '-_:', '|~', '\\', ']']) expect(separator(ok)).toBe(ok)
    for (const bad of ['', '+', '#', '/', 'a', '0', ' ', ':#', '😀', 'é', ':'.repeat(17), 7]) expect(separator(bad)).toBeNull()
  })
})
