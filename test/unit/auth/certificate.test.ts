import type { IConnectPacket } from 'mqtt-packet'
import { describe, expect, it } from 'vitest'
import { CheckChain } from '../../../src/checks/chain.js'
import { authCheck } from '../../../src/checks/auth.js'
import { detachedCheckEnv } from '../../../src/checks/env.js'
import { Action, type Verdict } from '../../../src/checks/verdict.js'
import type { MoatConfig } from '../../../src/config/types.js'
import type { ClientCertificate, ConnInfo } from '../../../src/client/conn-info.js'
import { SessionState } from '../../../src/client/session-state.js'
import { testAuth } from '../../helpers/moat.js'

const cert: ClientCertificate = {
  subject: 'CN=device-9,O=Acme',
  cn: 'device-9',
  sans: ['DNS:device-9.acme.test', 'email:ops@acme.test', 'URI:spiffe://acme/device-9'],
  fingerprint256: 'AB:CD:EF',
}

function tlsState(certificate: ClientCertificate | null): SessionState {
  const conn: ConnInfo = { listener: 'mqtts', remoteAddress: '10.0.0.9', remotePort: 50000, transport: 'tls', tlsVersion: 'TLSv1.3', certificate }
  const s = new SessionState(1, conn)
  s.version = 5
  return s
}

async function run(auth: Record<string, unknown>, s: SessionState, connect: Partial<IConnectPacket> = {}): Promise<Verdict> {
  const config = { file: '', auth: testAuth(auth) } as MoatConfig
  const checks = CheckChain.build(config, [authCheck], detachedCheckEnv()).forSession(s)
  s.clientId = connect.clientId ?? 'device-9'
  return await checks.runConnect({ cmd: 'connect', protocolVersion: 5, clientId: s.clientId, ...connect } as IConnectPacket, s)
}

describe('certificate backend', () => {
  it.each([
    ['cn', 'device-9'],
    ['subject', 'CN=device-9,O=Acme'],
    ['san-dns', 'device-9.acme.test'],
    ['san-email', 'ops@acme.test'],
    ['san-uri', 'spiffe://acme/device-9'],
    ['fingerprint', 'AB:CD:EF'],
  ])('a verified certificate alone identifies the client (usernameFrom: %s)', async (usernameFrom, username) => {
    const s = tlsState(cert)
    const verdict = await run({ backends: [{ type: 'certificate', usernameFrom }] }, s)
    expect(verdict.action).toBe(Action.Forward)
    expect(s.username).toBe(username)
    expect(s.authenticatedBy).toBe('certificate')
    expect(s.claims).toMatchObject({ 'cert.cn': 'device-9', 'cert.subject': 'CN=device-9,O=Acme' })
  })

  it('replaces whatever user name the CONNECT claimed', async () => {
    const s = tlsState(cert)
    expect((await run({ backends: [{ type: 'certificate' }] }, s, { username: 'admin', password: Buffer.from('x') })).action).toBe(Action.Forward)
    expect(s.username).toBe('device-9')
  })

  it('has no opinion without a certificate: refused (0x87) when nobody else admits the client', async () => {
    const s = tlsState(null)
    const verdict = await run({ backends: [{ type: 'certificate' }] }, s)
    expect(verdict).toMatchObject({ action: Action.Disconnect, reason: 0x87, why: 'not_authorized' })
  })

  it('has no opinion when the chosen field is empty (no SAN of that kind)', async () => {
    const s = tlsState({ ...cert, sans: [] })
    const verdict = await run({ backends: [{ type: 'certificate', usernameFrom: 'san-dns' }] }, s)
    expect(verdict.action).toBe(Action.Disconnect)
  })

  it('binds the client id to the certificate name', async () => {
    const auth = { backends: [{ type: 'certificate' }], clientId: { bind: 'username' } }
    expect((await run(auth, tlsState(cert), { clientId: 'device-9' })).action).toBe(Action.Forward)
    expect(await run(auth, tlsState(cert), { clientId: 'device-1' })).toMatchObject({ reason: 0x85, why: 'client_id_refused' })
  })
})
