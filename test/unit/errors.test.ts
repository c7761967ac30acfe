import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { errorCodes, MoatError } from '../../src/errors.js'

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

describe('error catalogue', () => {
  it('documents every code in docs/errors.md', () => {
    for (const code of Object.keys(errorCodes)) expect(docs, code).toContain(`\`${code}\``)
  })

  it('documents no code the catalogue lacks', () => {
    const documented = new Set(docs.match(/MOAT_ERR_[A-Z_]+/g))
    expect([...documented].sort()).toEqual(Object.keys(errorCodes).sort())
  })

  it('carries the code on the error', () => {
    const err = new MoatError('MOAT_ERR_LISTEN', 'port in use')
    expect(err.code).toBe('MOAT_ERR_LISTEN')
    expect(err.message).toBe('port in use')
    expect(err).toBeInstanceOf(Error)
  })
})
