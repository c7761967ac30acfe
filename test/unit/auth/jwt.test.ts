import { createPublicKey } from 'node:crypto'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import type { AuthRequest } from '../../../src/auth/backend.js'
import { JwtBackend } from '../../../src/auth/jwt.js'
import type { JwtBackendConfig } from '../../../src/config/types.js'

const base: JwtBackendConfig = {
  type: 'jwt', secret: null, publicKey: null, jwksUrl: null, jwksCacheMaxAgeMs: 600_000, jwksTimeoutMs: 5000,
  algorithms: ['RS256'], audience: null, issuer: null, clockToleranceMs: 0, usernameClaim: 'sub', claims: [], groupsClaim: null, cache: null,
}
const req = (token: string): AuthRequest => ({
  username: null, password: Buffer.from(token), clientId: 'c', remoteAddress: 'r', listener: 'l', transport: 'tcp', protocolVersion: 4, certificate: null,
})
const exp = (): number => Math.floor(Date.now() / 1000) + 600

describe('JwtBackend with a public key (PEM)', () => {
  it('accepts an RS256 token signed by the matching private key, with validUntil from exp', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const pem = await exportSPKI(publicKey)
    const backend = new JwtBackend({ ...base, publicKey: pem })
    const e = exp()
    const token = await new SignJWT({ sub: 'd1', exp: e }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey)
    expect(await backend.authenticate(req(token))).toMatchObject({ outcome: 'allow', username: 'd1', validUntil: e * 1000 })
  })

  it('refuses an HS256 token whose "secret" is the public key text (algorithm confusion)', async () => {
    const { publicKey } = await generateKeyPair('RS256')
    const pem = await exportSPKI(publicKey)
    const backend = new JwtBackend({ ...base, publicKey: pem, algorithms: ['RS256', 'HS256'] })
    const forged = await new SignJWT({ sub: 'admin', exp: exp() }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(pem))
    expect(await backend.authenticate(req(forged))).toMatchObject({ outcome: 'deny' })
    expect(createPublicKey(pem).type).toBe('public')
  })

  it('has no opinion on a password that is not a JWT, or an oversized one', async () => {
    const backend = new JwtBackend({ ...base, secret: 'x'.repeat(32), algorithms: ['HS256'] })
    expect(await backend.authenticate(req('just a password'))).toMatchObject({ outcome: 'none' })
    expect(await backend.authenticate(req(`a.${'b'.repeat(20_000)}.c`))).toMatchObject({ outcome: 'none' })
  })

  it('refuses a token without the username claim', async () => {
    const secret = 'y'.repeat(32)
    const backend = new JwtBackend({ ...base, secret, algorithms: ['HS256'] })
    const token = await new SignJWT({ exp: exp() }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret))
    expect(await backend.authenticate(req(token))).toMatchObject({ outcome: 'deny' })
  })
})
