/**
 * `moat check` with the real binary: its answers to --as agree with what the running proxy does to
 * the same packet (a real Moat in front of a real broker, both sides looked at); what fails at start
 * (addresses that cannot all bind) fails the check; --no-files checks a config whose files exist
 * only elsewhere without reading them, and says which.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generate, type IConnackPacket, type IPubackPacket } from 'mqtt-packet'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { Moat } from '../../src/moat.js'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { ConfigDir, runCli } from '../helpers/cli.js'
import { connectPacket, RawClient, rawSession, shortId } from '../helpers/clients.js'

const configs = new ConfigDir()
const dir = configs.dir
const writeConfig = (name: string, lines: string[]): string => configs.write(name, lines)

describe('moat check --as agrees with the running proxy', () => {
  let broker: TestBroker
  let moat: Moat
  let port: number
  let file: string

  beforeAll(async () => {
    broker = await startBroker(brokerKinds()[0]!)
    // An ACL that allows every topic, `$` ones included: what refuses below is not the ACL.
    file = writeConfig('agree.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${broker.port} }`,
      'auth: { anonymous: true }',
      'acl:',
      '  - { name: everything, allow: all, topic: "#" }',
      '  - { name: server-topics, allow: all, topic: "$cve/#" }',
    ])
    moat = new Moat(loadConfig(file), { logger: pino({ level: 'silent' }) })
    await moat.start()
    port = moat.address().port
  })

  afterAll(async () => {
    await moat?.shutdown(0)
    await broker?.stop()
  })

  it('a wildcard in a PUBLISH topic: refused by the protocol check, and the proxy closes a client that sends one; the broker gets nothing', async () => {
    const check = await runCli(['check', '--config', file, '--as', ':dev1', '--publish', 'devices/+/temp'])
    expect(check).toMatchObject({ code: 3, stderr: '' })
    expect(check.stdout).toBe('publish devices/+/temp as (anonymous):dev1: deny (protocol: a topic name is not empty and holds no + or # [MQTT-3.3.2-2, MQTT-4.7.3-1]; the client is disconnected)\n')
    const id = shortId()
    const raw = await rawSession(port, id)
    raw.send(generate({ cmd: 'publish', topic: 'devices/+/temp', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false }))
    expect(await raw.nextPacket()).toBeNull()
    await raw.closed
    await broker.clientGone(id)
    expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([])
    // The same topic without the wildcard: the ACL's answer, and the proxy forwards it.
    expect(await runCli(['check', '--config', file, '--as', ':dev1', '--publish', 'devices/1/temp'])).toMatchObject({ code: 0, stdout: 'publish devices/1/temp as (anonymous):dev1: allow (everything)\n' })
  })

  it("a '$' topic: refused by the cve-2018-12543 virtual patch (5.0 PUBACK 0x90), not by the ACL that allows it; the broker gets nothing", async () => {
    const check = await runCli(['check', '--config', file, '--as', 'alice:dev1', '--publish', '$cve/12543', '--qos', '1'])
    expect(check).toMatchObject({ code: 3, stdout: "publish $cve/12543 as alice:dev1: deny (virtual patch cve-2018-12543: a topic beginning with '$' other than $SYS; the packet is refused)\n" })
    const id = shortId()
    const raw = await rawSession(port, id, 5)
    raw.send(generate({ cmd: 'publish', topic: '$cve/12543', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false }, { protocolVersion: 5 }))
    expect(await raw.nextPacket() as IPubackPacket).toMatchObject({ cmd: 'puback', messageId: 7, reasonCode: 0x90 })
    raw.destroy()
    await broker.clientGone(id)
    expect(broker.received(id).filter((r) => r.startsWith('publish'))).toEqual([])
    // With the patch off, the ACL decides, as the proxy would.
    const off = writeConfig('agree-off.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      'upstream: { host: 127.0.0.1, port: 1883 }',
      'virtualPatches: { cve-2018-12543: false }',
      'acl: [{ name: server-topics, allow: all, topic: "$cve/#" }]',
    ])
    expect(await runCli(['check', '--config', off, '--as', 'alice:dev1', '--publish', '$cve/12543'])).toMatchObject({ code: 0, stdout: 'publish $cve/12543 as alice:dev1: allow (server-topics)\n' })
  })

  it('a client id holding + is refused at CONNECT (cve-2017-7650), as the proxy refuses it', async () => {
    const check = await runCli(['check', '--config', file, '--as', 'alice:dev+', '--subscribe', 'devices/#'])
    expect(check).toMatchObject({ code: 3, stdout: 'subscribe devices/# as alice:dev+: deny (virtual patch cve-2017-7650: a client id or user name holding + or #; the CONNECT is refused)\n' })
    const raw = new RawClient(port)
    await raw.connected()
    raw.send(connectPacket('dev+', 4, { username: 'alice' }))
    expect(await raw.nextPacket() as IConnackPacket).toMatchObject({ cmd: 'connack', returnCode: 2 })
    await raw.closed
  })

  it('an invalid filter is refused by the protocol check; --listener names a listener of the config', async () => {
    expect(await runCli(['check', '--config', file, '--as', ':dev1', '--subscribe', 'devices/#/temp'])).toMatchObject({
      code: 3, stdout: 'subscribe devices/#/temp as (anonymous):dev1: deny (protocol: not a topic filter (# only last, + and # fill whole levels, a $share name and a filter after it); the client is disconnected)\n',
    })
    expect(await runCli(['check', '--config', file, '--as', ':dev1', '--subscribe', 'devices/#', '--listener', 'mqtt'])).toMatchObject({
      code: 2, stderr: "moat: --listener 'mqtt' is not a listener of this config (edge) [MOAT_ERR_USAGE]\nrun 'moat check --help' for its usage\n",
    })
  })
})

describe('moat check: what would fail at start', () => {
  it('refuses an admin port on a listener, a listener on the broker, and two listeners on one address, each with file, line, key and reason', async () => {
    const file = writeConfig('binds.yaml', [
      'listeners:',
      '  - { name: edge, protocol: mqtt, host: 0.0.0.0, port: 1883 }',
      '  - { name: local, protocol: mqtt, host: 127.0.0.1, port: 1883 }',
      '  - { name: loop, protocol: mqtt, host: 127.0.0.1, port: 1884 }',
      'upstream: { host: 127.0.0.1, port: 1884 }',
      'admin: { host: 0.0.0.0, port: 1883 }',
    ])
    const result = await runCli(['check', '--config', file])
    expect(result).toMatchObject({ code: 1, stdout: '' })
    expect(result.stderr).toBe([
      'moat: invalid config [MOAT_ERR_CONFIG_INVALID]',
      `${file}:3:59 listeners.1.port: 127.0.0.1:1883 overlaps listener 'edge' on 0.0.0.0:1883: only one of them can bind it`,
      `${file}:4:58 listeners.2.port: 127.0.0.1:1884 is the broker's own address (upstream 127.0.0.1:1884): Moat cannot listen where the broker does, nor proxy to itself`,
      `${file}:6:31 admin.port: 0.0.0.0:1883 overlaps listener 'edge' on 0.0.0.0:1883: only one of them can bind it`,
      '',
    ].join('\n'))
  })
})

describe('moat check --no-files', () => {
  it('checks a config whose files are elsewhere without reading them, and lists them; without it, each file is read and checked', async () => {
    const sub = join(dir, 'container')
    mkdirSync(sub)
    // Files that exist but are not what they should be: only reading them can tell.
    for (const name of ['server.crt', 'server.key', 'passwd', 'acl', 'jwt.pem']) writeFileSync(join(sub, name), 'not what it should be\n')
    const file = join(sub, 'moat.yaml')
    writeFileSync(file, [
      'listeners: [{ name: tls, protocol: mqtts, port: 8883, tls: { cert: server.crt, key: server.key } }]',
      'upstream: { host: broker, port: 1883, tls: { ca: /nowhere/ca.crt } }',
      'auth:',
      '  backends:',
      '    - { type: file, path: passwd }',
      '    - { type: jwt, publicKey: jwt.pem }',
      '  upstreamCredentials: { username: moat, passwordFile: /nowhere/broker-password }',
      'acl: { mosquittoAclFile: acl, rules: [] }',
      '',
    ].join('\n'))
    const read = await runCli(['check', '--config', file])
    expect(read.code).toBe(1)
    expect(read.stderr).toContain(`${join(sub, 'acl')}:1:1 unknown keyword 'not'`)

    const skipped = await runCli(['check', '--config', file, '--no-files'])
    expect(skipped).toMatchObject({ code: 0, stderr: '' })
    expect(skipped.stdout).toBe([
      `${file}: valid without its files (1 listener(s), upstream broker:1883)`,
      'not read (--no-files); check them where they exist:',
      `  acl.mosquittoAclFile                   ${join(sub, 'acl')}`,
      `  auth.backends.0.path                   ${join(sub, 'passwd')}`,
      `  auth.backends.1.publicKey              ${join(sub, 'jwt.pem')}`,
      '  auth.upstreamCredentials.passwordFile  /nowhere/broker-password',
      `  listeners.0.tls.cert                   ${join(sub, 'server.crt')}`,
      `  listeners.0.tls.key                    ${join(sub, 'server.key')}`,
      '  upstream.tls.ca                        /nowhere/ca.crt',
      '',
    ].join('\n'))
  })

  it('still refuses what is wrong in the config itself', async () => {
    const file = writeConfig('nofiles-bad.yaml', [
      'listeners: [{ name: tls, protocol: mqtts, port: 8883, tls: { cert: /certs/server.crt, key: /certs/server.key } }]',
      'upstream: { host: broker, port: 1883 }',
      'admin: { port: 8883 }',
    ])
    const result = await runCli(['check', '--config', file, '--no-files'])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("admin.port: 127.0.0.1:8883 overlaps listener 'tls' on 0.0.0.0:8883")
  })
})
