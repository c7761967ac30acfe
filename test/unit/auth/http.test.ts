import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BackendError, type AuthRequest } from '../../../src/auth/backend.js'
import { HttpBackend } from '../../../src/auth/http.js'
import type { HttpBackendConfig } from '../../../src/config/types.js'
import { AuthService, json } from '../../helpers/auth.js'

const request = (over: Partial<AuthRequest> = {}): AuthRequest => ({
  username: 'dev', password: Buffer.from('pw'), clientId: 'dev-1', remoteAddress: '198.51.100.4', listener: 'mqtts',
  transport: 'tls', protocolVersion: 5,
  certificate: { subject: 'CN=dev,O=Acme', cn: 'dev', sans: ['DNS:dev.acme.test'], fingerprint256: 'AA:BB' },
  ...over,
})

describe('HttpBackend (against a real HTTP server)', () => {
  let service: AuthService
  const config = (over: Partial<HttpBackendConfig> = {}): HttpBackendConfig => ({
    type: 'http', url: service.url + '?tenant=1', timeoutMs: 2000, connections: 4, maxPending: 10, headers: { authorization: 'Bearer t' }, cache: null, ...over,
  })

  beforeAll(async () => {
    service = await AuthService.start((body, res) => {
      if (body.clientId === 'hold') return service.hold(res)
      if (body.clientId === 'big') {
        res.writeHead(200)
        res.end(JSON.stringify({ result: 'allow', groups: Array.from({ length: 10_000 }, (_, i) => `g${i}`) }))
        return
      }
      if (body.clientId === 'bad-groups') return json(res, 200, { result: 'allow', groups: 'admin' })
      json(res, 200, { result: 'allow', username: 'canonical', groups: ['a'], attributes: { site: 'x' } })
    })
  })
  afterAll(async () => service.stop())

  it('posts every contract field (certificate subject included) and maps the answer to an identity', async () => {
    const backend = new HttpBackend(config())
    const result = await backend.authenticate(request(), AbortSignal.timeout(5000))
    expect(result).toMatchObject({ outcome: 'allow', username: 'canonical', groups: ['a'], claims: { site: 'x' } })
    expect(service.requests.at(-1)).toEqual({
      username: 'dev', password: 'pw', clientId: 'dev-1', remoteAddress: '198.51.100.4', listener: 'mqtts', transport: 'tls', protocolVersion: 5,
      certificate: { subject: 'CN=dev,O=Acme', cn: 'dev', sans: ['DNS:dev.acme.test'], fingerprint256: 'AA:BB' },
    })
    await backend.close()
  })

  it('sends a password that is not UTF-8 as passwordBase64', async () => {
    const backend = new HttpBackend(config())
    await backend.authenticate(request({ password: Buffer.from([0xff, 0x00, 0xfe]) }), AbortSignal.timeout(5000))
    expect(service.requests.at(-1)).toMatchObject({ password: null, passwordBase64: Buffer.from([0xff, 0x00, 0xfe]).toString('base64') })
    await backend.close()
  })

  it('refuses an answer over 64 KiB and one that breaks the contract (bad_response)', async () => {
    const backend = new HttpBackend(config())
    await expect(backend.authenticate(request({ clientId: 'big' }), AbortSignal.timeout(5000))).rejects.toMatchObject({ kind: 'bad_response' })
    await expect(backend.authenticate(request({ clientId: 'bad-groups' }), AbortSignal.timeout(5000))).rejects.toMatchObject({ kind: 'bad_response' })
    await backend.close()
  })

  it('bounds the requests in flight: beyond connections + maxPending it fails at once (overloaded)', async () => {
    const backend = new HttpBackend(config({ connections: 2, maxPending: 0 }))
    const before = service.requests.filter((r) => r.clientId === 'hold').length
    const held = [1, 2].map(() => backend.authenticate(request({ clientId: 'hold' }), AbortSignal.timeout(5000)))
    const third = backend.authenticate(request({ clientId: 'hold' }), AbortSignal.timeout(5000))
    await expect(third).rejects.toBeInstanceOf(BackendError)
    await expect(third).rejects.toMatchObject({ kind: 'overloaded' })
    await expect.poll(() => service.requests.filter((r) => r.clientId === 'hold').length).toBe(before + 2)
    service.release({ result: 'deny' })
    expect((await Promise.all(held)).map((r) => r.outcome)).toEqual(['deny', 'deny'])
    await backend.close()
  })
})
