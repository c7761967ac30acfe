/**
 * JWT in the CONNECT password: HS256 with a shared secret, RS256 with keys from a real JWKS
 * server; expired, not-yet-valid, wrong audience, wrong issuer, bad signature and unknown-key
 * tokens refused; a JWKS that cannot be fetched fails closed; a password that is not a JWT passes
 * on to the next backend. Each refusal: the client's code, and no connection at the broker.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Moat } from '../../src/moat.js'
import { mosquittoPasswd, refused } from '../helpers/auth.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { connect, uid } from '../helpers/clients.js'
import { freePort } from '../helpers/mosquitto.js'
import { startMoat } from '../helpers/moat.js'

const kind = brokerKinds()[0]!
const SECRET = 'a-shared-secret-of-at-least-32-bytes!'
const secretKey = new TextEncoder().encode(SECRET)
const now = (): number => Math.floor(Date.now() / 1000)

describe(`jwt auth in front of ${kind}`, () => {
  let broker: TestBroker
  let jwks: http.Server
  let jwksUrl: string
  let jwksRequests = 0
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>
  let other: Awaited<ReturnType<typeof generateKeyPair>>
  let hsMoat: Moat
  let rsMoat: Moat
  let downMoat: Moat
  let dir: string

  function hs(claims: Record<string, unknown>, key: Uint8Array = secretKey): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key)
  }
  function rs(claims: Record<string, unknown>, key = rsa.privateKey, kid = 'k1'): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key)
  }
  const good = (sub: string): Record<string, unknown> => ({ sub, aud: 'moat', iss: 'https://issuer.test', exp: now() + 600, tenant: 'acme', roles: ['r1', 'r2'] })

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256')
    other = await generateKeyPair('RS256')
    const jwk: JWK = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    jwks = http.createServer((_req, res) => {
      jwksRequests++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ keys: [jwk] }))
    })
    jwks.listen(0, '127.0.0.1')
    await once(jwks, 'listening')
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`
    dir = mkdtempSync(join(tmpdir(), 'moat-jwt-'))
    mosquittoPasswd(join(dir, 'passwd'), { operator: 'op-secret' })
    broker = await startBroker(kind)
    hsMoat = await startMoat(broker, {
      auth: {
        backends: [
          { type: 'jwt', secret: SECRET, audience: 'moat', issuer: 'https://issuer.test', claims: ['tenant', 'roles'], groupsClaim: 'roles' },
          { type: 'file', path: join(dir, 'passwd') },
        ],
        lockout: false,
      },
    })
    rsMoat = await startMoat(broker, { auth: { backends: [{ type: 'jwt', jwksUrl, audience: 'moat', claims: ['tenant'] }], lockout: false } })
    downMoat = await startMoat(broker, { auth: { backends: [{ type: 'jwt', jwksUrl: `http://127.0.0.1:${await freePort()}/jwks`, jwksTimeout: '1s' }], lockout: false } })
  })

  afterAll(async () => {
    for (const m of [hsMoat, rsMoat, downMoat]) await m?.shutdown(0)
    jwks?.closeAllConnections()
    jwks?.close()
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('admits an HS256 token: the subject becomes the user name, chosen claims the attributes, roles the groups', async () => {
    const clientId = uid('jwt')
    const client = await connect(hsMoat.address().port, { clientId, username: 'ignored', password: await hs(good('device-7')), protocolVersion: 5 })
    await client.publishAsync(`jwt/${clientId}`, 'x', { qos: 1 })
    await expect.poll(() => broker.received(clientId)).toEqual(['connect', `publish jwt/${clientId}`])
    expect(hsMoat.sessionInfo().find((s) => s.clientId === clientId)).toMatchObject({
      username: 'device-7', authenticatedBy: 'jwt', claims: { tenant: 'acme', roles: 'r1,r2' }, groups: ['r1', 'r2'],
    })
    await client.endAsync()
  })

  it('admits an RS256 token signed with a key from the JWKS server (fetched once, then cached)', async () => {
    for (let i = 0; i < 3; i++) {
      const clientId = uid('rs')
      const client = await connect(rsMoat.address().port, { clientId, username: 'x', password: await rs(good(`rs-device-${i}`)) })
      expect(rsMoat.sessionInfo().find((s) => s.clientId === clientId)).toMatchObject({ username: `rs-device-${i}`, authenticatedBy: 'jwt', claims: { tenant: 'acme' } })
      await client.endAsync()
    }
    expect(jwksRequests).toBe(1)
  })

  it('passes a password that is not a JWT on to the next backend (the password file)', async () => {
    const client = await connect(hsMoat.address().port, { clientId: uid('op'), username: 'operator', password: 'op-secret' })
    await client.endAsync()
  })

  const bad: Array<[string, () => Promise<string>, 'hs' | 'rs']> = [
    ['an expired HS256 token', () => hs({ ...good('d'), exp: now() - 60 }), 'hs'],
    ['a token not valid yet (nbf)', () => hs({ ...good('d'), nbf: now() + 600 }), 'hs'],
    ['a token for another audience', () => hs({ ...good('d'), aud: 'someone-else' }), 'hs'],
    ['a token from another issuer', () => hs({ ...good('d'), iss: 'https://evil.test' }), 'hs'],
    ['a token without exp', () => hs({ sub: 'd', aud: 'moat', iss: 'https://issuer.test' }), 'hs'],
    ['a token signed with another secret', () => hs(good('d'), new TextEncoder().encode('another-secret-another-secret-123')), 'hs'],
    ['an unsigned token (alg none)', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(good('d'))).toString('base64url')}.x`, 'hs'],
    ['an expired RS256 token', () => rs({ ...good('d'), exp: now() - 60 }), 'rs'],
    ['an RS256 token for another audience', () => rs({ ...good('d'), aud: 'nope' }), 'rs'],
    ['an RS256 token signed by a key the JWKS does not have', () => rs(good('d'), other.privateKey, 'k1'), 'rs'],
  ]
  for (const [what, token, which] of bad) {
    it(`refuses ${what}: 5.0 0x86 and 3.1.1 4; the broker sees nothing`, async () => {
      const port = (which === 'hs' ? hsMoat : rsMoat).address().port
      const before = broker.connections()
      const clientId = uid('badjwt')
      expect(await refused(port, { clientId, username: 'd', password: await token(), version: 5 })).toBe(0x86)
      expect(await refused(port, { clientId, username: 'd', password: await token(), version: 4 })).toBe(4)
      expect(broker.connections()).toBe(before)
      await expect.poll(() => broker.received(clientId)).toEqual([])
    })
  }

  it('fails closed when the JWKS cannot be fetched: 0x87, counted as a backend error', async () => {
    const before = broker.connections()
    expect(await refused(downMoat.address().port, { clientId: uid('down'), username: 'd', password: await rs(good('d')), version: 5 })).toBe(0x87)
    expect(broker.connections()).toBe(before)
    expect(downMoat.stats.auth.decided('backend_failed')).toBe(1)
  })
})
