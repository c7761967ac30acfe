/**
 * The `moat` command as a user runs it: node dist/cli.js (built by test/global-setup.ts), with real
 * configs, a real broker (Aedes in this process) and real clients.
 */
import { EventEmitter, once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { Aedes } from 'aedes'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigDir, runCli, startCli } from '../helpers/cli.js'


/** MQTT.js clients are event emitters whose typings node:events' once() does not accept. */
const events = (client: mqtt.MqttClient): EventEmitter => client as unknown as EventEmitter

const run = runCli
const start = startCli

let broker: Aedes
let brokerServer: net.Server
let brokerPort: number
const configs = new ConfigDir()
const dir = configs.dir

beforeAll(async () => {
  broker = await Aedes.createBroker()
  brokerServer = net.createServer(broker.handle)
  brokerServer.listen(0, '127.0.0.1')
  await once(brokerServer, 'listening')
  brokerPort = (brokerServer.address() as net.AddressInfo).port
})

afterAll(async () => {
  brokerServer.close()
  await new Promise<void>((resolve) => broker.close(() => resolve()))
})

const writeConfig = (name: string, text: string): string => configs.write(name, text)

describe('moat check', () => {
  it('accepts a valid config and exits 0', async () => {
    const result = await run(['check', '--config', 'policies/example.yaml'])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/policies\/example\.yaml: valid/)
  })

  it('prints every problem with file, line, key and reason, and exits 1', async () => {
    const file = writeConfig('bad.yaml', [
      'listeners:',
      '  - { name: mqtt, protocol: mqtt, port: 1883, keepAlive: {} }',
      'upstream: { host: 127.0.0.1, port: 1884 }',
      'limits: { maxPacketSize: huge }',
    ].join('\n'))
    const result = await run(['check', '--config', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`${file}:2:`)
    expect(result.stderr).toMatch(/listeners\.0\.keepAlive: unknown key 'keepAlive'/)
    expect(result.stderr).toMatch(new RegExp(`${file}:4:\\d+ limits\\.maxPacketSize: expected a size like 256KiB`))
  })

  it('answers an ACL question with the decision and the rule that decided (exit 0 allow, 3 deny)', async () => {
    const file = writeConfig('acl.yaml', [
      'listeners: [{ name: mqtt, protocol: mqtt, port: 1883 }]',
      'upstream: { host: 127.0.0.1, port: 1884 }',
      'acl:',
      '  - { name: own-tree, allow: all, topic: "devices/{client_id}/#" }',
      '  - { name: ops-only, allow: subscribe, topic: "$SYS/#", users: [ops], maxQos: 0 }',
      '  - { name: nothing-else, deny: all, topic: "#" }',
    ].join('\n'))
    const allowed = await run(['check', '--config', file, '--as', 'alice:dev1', '--publish', 'devices/dev1/temp'])
    expect(allowed.code).toBe(0)
    expect(allowed.stdout).toBe('publish devices/dev1/temp as alice:dev1: allow (own-tree)\n')
    const denied = await run(['check', '--config', file, '--as', 'alice:dev1', '--subscribe', 'devices/+/temp'])
    expect(denied.code).toBe(3)
    expect(denied.stdout).toBe('subscribe devices/+/temp as alice:dev1: deny (nothing-else)\n')
    const ops = await run(['check', '--config', file, '--as', 'ops:console', '--subscribe', '$SYS/#'])
    expect(ops.stdout).toBe('subscribe $SYS/# as ops:console: allow (ops-only)\n')
    const downgraded = await run(['check', '--config', file, '--as', 'ops:console', '--subscribe', '$SYS/#', '--qos', '1'])
    expect(downgraded).toMatchObject({ code: 0, stdout: 'subscribe $SYS/# as ops:console: allow (ops-only), granted QoS 0\n' })
    const anonymous = await run(['check', '--config', file, '--as', ':dev2', '--subscribe', '$SYS/#'])
    // `#` does not reach `$` topics [MQTT-4.7.2-1]: no rule matches, and no match denies.
    expect(anonymous.stdout).toMatch(/as \(anonymous\):dev2: deny \(default deny/)
    const usage = await run(['check', '--config', file, '--publish', 'a'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/--as USER:CLIENT is required/)
  })

  it('says which deny rules\' topics a wildcard subscription past them does not deliver (acl.overlap: filter)', async () => {
    const file = writeConfig('acl-overlap.yaml', [
      'listeners: [{ name: mqtt, protocol: mqtt, port: 1883 }]',
      'upstream: { host: 127.0.0.1, port: 1884 }',
      'acl:',
      '  - { name: no-subscribe, deny: subscribe, topic: test/nosubscribe }',
      '  - { name: everything-else, allow: all, topic: "#" }',
    ].join('\n'))
    const wildcard = await run(['check', '--config', file, '--as', 'alice:dev1', '--subscribe', '#'])
    expect(wildcard).toMatchObject({ code: 0, stdout: 'subscribe # as alice:dev1: allow (everything-else); not delivered: the topics of no-subscribe\n' })
    const exact = await run(['check', '--config', file, '--as', 'alice:dev1', '--subscribe', 'test/nosubscribe'])
    expect(exact).toMatchObject({ code: 3, stdout: 'subscribe test/nosubscribe as alice:dev1: deny (no-subscribe)\n' })
    const shared = await run(['check', '--config', file, '--as', 'alice:dev1', '--subscribe', '$share/g/#'])
    expect(shared).toMatchObject({ code: 3, stdout: 'subscribe $share/g/# as alice:dev1: deny (no-subscribe)\n' })
  })

  it('refuses a missing --config with a usage error (exit 2): one line and the help to read, not the manual', async () => {
    const result = await run(['check'])
    expect(result).toMatchObject({ code: 2, stdout: '' })
    expect(result.stderr).toBe("moat: 'moat check' needs --config FILE [MOAT_ERR_USAGE]\nrun 'moat check --help' for its usage\n")
  })
})

describe('moat --config FILE', () => {
  it('proxies real clients, then drains on SIGTERM and exits 0', async () => {
    const file = writeConfig('run.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'shutdown: { gracePeriod: 200ms }',
      'auth: { anonymous: true }',
    ].join('\n'))
    const moat = await start(['--config', file], /"event":"listening".*?"port":(\d+)/)
    expect(moat.output()).toMatch(/"level":"warn".*"event":"auth_anonymous".*auth\.anonymous is true/)
    const port = Number(moat.match[1])
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port, clientId: 'cli-1', reconnectPeriod: 0 })
    await client.subscribeAsync('cli/t')
    const message = once(events(client), 'message')
    await client.publishAsync('cli/t', 'through the binary')
    const [topic, payload] = await message
    expect(topic).toBe('cli/t')
    expect(String(payload)).toBe('through the binary')

    const closed = once(events(client), 'close')
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    await closed
    const [code] = await exited
    expect(code).toBe(0)
    expect(moat.output()).toMatch(/"event":"shutdown"/)
    expect(moat.output()).toMatch(/"reason":"shutdown"/)
    client.end(true)
  })

  it('reloads the config on SIGHUP, and keeps the running one when the new file is invalid', async () => {
    const file = writeConfig('hup.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'auth: { anonymous: true }',
    ].join('\n'))
    const moat = await start(['--config', file], /"event":"ready"/)
    const waitFor = async (re: RegExp): Promise<void> => {
      await expect.poll(() => re.test(moat.output()), { timeout: 5000 }).toBe(true)
    }
    writeFileSync(file, readFileSync(file, 'utf8') + '\nlimits: { maxPacketSize: 1KiB }\n')
    moat.child.kill('SIGHUP')
    await waitFor(/"outcome":"success".*"generation":2/)
    writeFileSync(file, 'listeners: nope\n')
    moat.child.kill('SIGHUP')
    await waitFor(/"outcome":"failure".*reload failed: keeping the running policy/)
    expect(moat.output()).toMatch(/listeners: expected a list of listeners/)
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  })

  it('a SIGHUP while starting (the listener up, the admin endpoint not yet) does not end the process: the reload comes once started', async () => {
    const file = writeConfig('early-hup.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'admin: { host: 127.0.0.1, port: 0 }',
      'auth: { anonymous: true }',
    ].join('\n'))
    // Moat logs `listening`, then binds the admin endpoint, then says `ready`: the SIGHUP lands
    // while it starts (or just after; either way it must reload and go on, never end the process).
    const moat = await start(['--config', file], /"event":"listening"/)
    writeFileSync(file, readFileSync(file, 'utf8') + '\nlimits: { maxPacketSize: 1KiB }\n')
    moat.child.kill('SIGHUP')
    await expect.poll(() => /"event":"ready"[\s\S]*"event":"config_reload","outcome":"success"/.test(moat.output()), { timeout: 5000 }).toBe(true)
    expect(moat.child.exitCode).toBe(null)
    expect(moat.child.signalCode).toBe(null)
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  })

  it('reloads by itself when the config file changes', async () => {
    const file = writeConfig('watch.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
    ].join('\n'))
    const moat = await start(['--config', file], /"event":"ready"/)
    writeFileSync(file, readFileSync(file, 'utf8') + '\nlimits: { maxPacketSize: 2KiB }\n')
    await expect.poll(() => /"event":"config_changed"[\s\S]*"outcome":"success".*"generation":2/.test(moat.output()), { timeout: 8000 }).toBe(true)
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  })

  it('names the listener that cannot bind and exits 1', async () => {
    // The broker's port, taken by the broker; the config dials another, so only the bind can tell.
    const file = writeConfig('busy.yaml', [
      `listeners: [{ name: taken, protocol: mqtt, host: 127.0.0.1, port: ${brokerPort} }]`,
      'upstream: { host: 192.0.2.1, port: 1883 }',
    ].join('\n'))
    const result = await run(['--config', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(new RegExp(`listener 'taken' cannot listen on 127\\.0\\.0\\.1:${brokerPort}: EADDRINUSE`))
  })
})

describe('moat --config FILE: auth', () => {
  it('without an auth section refuses every client (CONNACK 5) and says why at start', async () => {
    const file = writeConfig('noauth.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
    ].join('\n'))
    const moat = await start(['--config', file], /"event":"listening".*?"port":(\d+)/)
    expect(moat.output()).toMatch(/"event":"auth_no_backends".*every client will be refused/)
    const client = mqtt.connect({ host: '127.0.0.1', port: Number(moat.match[1]), clientId: 'cli-anon', reconnectPeriod: 0 })
    const [err] = await once(events(client), 'error') as [Error & { code?: number }]
    expect(err.code).toBe(5)
    client.end(true)
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  })

  it('moat passwd FILE USER writes a scrypt line the file backend accepts; moat check validates the file', async () => {
    const passwd = join(dir, 'cli-passwd')
    const written = await run(['passwd', passwd, 'dev-1'], { stdin: 'dev-secret\n' })
    expect(written.code).toBe(0)
    expect(readFileSync(passwd, 'utf8')).toMatch(/^dev-1:\$scrypt\$N=16384,r=8,p=1\$[^$]+\$[^$]+\n$/)
    const file = writeConfig('passwd.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'auth: { backends: [{ type: file, path: cli-passwd }] }',
    ].join('\n'))
    expect((await run(['check', '--config', file])).code).toBe(0)
    const moat = await start(['--config', file], /"event":"listening".*?"port":(\d+)/)
    const port = Number(moat.match[1])
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port, clientId: 'cli-dev', username: 'dev-1', password: 'dev-secret', reconnectPeriod: 0 })
    await client.endAsync()
    const bad = mqtt.connect({ host: '127.0.0.1', port, clientId: 'cli-bad', username: 'dev-1', password: 'nope', reconnectPeriod: 0 })
    const [err] = await once(events(bad), 'error') as [Error & { code?: number }]
    expect(err.code).toBe(4)
    bad.end(true)
    expect(moat.output()).not.toContain('dev-secret')
    const exited = once(moat.child, 'close')
    moat.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  })

  it('moat check reports a missing password file with the config file and key', async () => {
    const file = writeConfig('nopasswd.yaml', [
      'listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]',
      `upstream: { host: 127.0.0.1, port: ${brokerPort} }`,
      'auth: { backends: [{ type: file, path: missing-passwd }] }',
    ].join('\n'))
    const result = await run(['check', '--config', file])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`${file} auth.backends.0.path: cannot read the password file ${join(dir, 'missing-passwd')}: no such file`)
  })
})
