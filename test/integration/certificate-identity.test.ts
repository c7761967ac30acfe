/**
 * The three parts working together on one identity: the mutual-TLS listener verifies the client
 * certificate, the `certificate` auth backend makes its CN the user name (certificate-only login:
 * no password), and ACL rules use it through `{cert.cn}` / `{username}`. Every refusal is shown from
 * both sides: the client's CONNACK / SUBACK / PUBACK code, and a broker that saw nothing.
 */
import { readFileSync } from 'node:fs'
import type { MqttClient } from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { aclFrom } from '../helpers/acl.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { makeTestCerts, type TestCerts } from '../helpers/certs.js'
import { connect, Inbox, uid } from '../helpers/clients.js'
import { configWith, listener, listenerTls, startMoatWith, tryConnect, type LoggedMoat } from '../helpers/listeners.js'

const kind = brokerKinds().includes('mosquitto') ? 'mosquitto' : 'aedes'

describe(`certificate identity through auth and ACL (${kind})`, () => {
  let certs: TestCerts
  let broker: TestBroker
  let m: LoggedMoat
  let port: number
  let witness: MqttClient
  let seen: Inbox

  const tlsAs = (name?: string): Record<string, unknown> => ({
    protocol: 'mqtts',
    ca: readFileSync(certs.ca),
    ...(name === undefined ? {} : { cert: readFileSync(certs.clients[name]!.cert), key: readFileSync(certs.clients[name]!.key) }),
  })

  beforeAll(async () => {
    certs = makeTestCerts(['device-1', 'device-2'])
    broker = await startBroker(kind)
    m = await startMoatWith(configWith(broker, [
      listener('secure', 'mqtts', { tls: listenerTls(certs.server.cert, certs.server.key, { ca: certs.ca, clientCert: 'optional' }) }),
    ], {
      auth: { backends: [{ type: 'certificate', usernameFrom: 'cn' }], clientId: { bind: 'username-prefix' } },
      acl: aclFrom([
        { name: 'own-telemetry', allow: 'publish', topic: 'telemetry/{cert.cn}/#' },
        { name: 'own-commands', allow: 'subscribe', topic: 'commands/{username}/#' },
        { name: 'nothing-else', deny: 'all', topic: '#' },
      ]),
    }))
    port = m.moat.address('secure').port
    witness = await connect(broker.port)
    seen = new Inbox(witness)
    await witness.subscribeAsync('#')
  })
  afterAll(async () => {
    await witness?.endAsync()
    await m?.moat.shutdown(0)
    await broker?.stop()
    certs?.cleanup()
  })

  it('logs in with the certificate alone: its CN is the user name and fills the ACL placeholders', async () => {
    const clientId = `device-1:${uid('main')}` // the CN, then the default separator
    const client = await connect(port, { ...tlsAs('device-1'), clientId })
    const inbox = new Inbox(client)
    const info = m.moat.sessionInfo().find((s) => s.clientId === clientId)!
    expect(info).toMatchObject({ username: 'device-1', authenticatedBy: 'certificate', transport: 'tls' })
    expect(info.certificate?.cn).toBe('device-1')

    // {cert.cn}: its own telemetry passes; another device's is refused (0x87 would be 5.0; 3.1.1 acks and drops).
    await client.publishAsync('telemetry/device-2/temp', 'forged', { qos: 1 })
    await client.publishAsync('telemetry/device-1/temp', '21.5', { qos: 1 })
    await seen.waitForTopic('telemetry/device-1/temp')
    expect(seen.messages.map((x) => x.topic)).not.toContain('telemetry/device-2/temp')
    expect(broker.received(clientId)).not.toContain('publish telemetry/device-2/temp')

    // {username} (from the CN): its own command tree, not another device's.
    const suback = new Promise<unknown>((resolve) => client.on('packetreceive', (p) => { if (p.cmd === 'suback') resolve(p) }))
    client.subscribe({ 'commands/device-1/#': { qos: 0 }, 'commands/device-2/#': { qos: 0 } }, () => {})
    expect(await suback).toMatchObject({ granted: [0, 0x80] }) // per filter: granted, refused
    await witness.publishAsync('commands/device-2/reboot', 'not yours')
    await witness.publishAsync('commands/device-1/reboot', 'yours')
    const got = await inbox.waitForTopic('commands/device-1/reboot')
    expect(got.payload.toString()).toBe('yours')
    expect(inbox.messages.map((x) => x.topic)).not.toContain('commands/device-2/reboot')
    await client.endAsync()
  })

  it('refuses a client without a certificate (not authorized) and the broker never sees it', async () => {
    const before = broker.connections()
    const result = await tryConnect(`mqtts://127.0.0.1:${port}`, { ...tlsAs(), clientId: uid('anon') })
    expect(result.outcome).toBe('error')
    expect(result.error?.message).toMatch(/Not authorized/i)
    expect(broker.connections()).toBe(before)
  })

  it('refuses a client id that does not start with the certificate CN (a device cannot take another one\'s id)', async () => {
    const before = broker.connections()
    const result = await tryConnect(`mqtts://127.0.0.1:${port}`, { ...tlsAs('device-2'), clientId: `device-1:${uid('main')}` })
    expect(result.outcome).toBe('error')
    expect(result.error?.message).toMatch(/Identifier rejected/i)
    expect(broker.connections()).toBe(before)
  })
})
