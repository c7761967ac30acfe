/**
 * `moat demo` as a newcomer runs it (node dist/cli.js demo): in front of this machine's Mosquitto
 * it speaks MQTT 5.0, and the commands it prints do what they say (the one that passes reaches the
 * broker, the refused ones reach nothing); it takes its Mosquitto with it when it stops or fails;
 * a taken port is answered with the options to pick others; and the embedded broker still works,
 * on request or when Mosquitto cannot start.
 */
import { execFile, spawnSync } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, startCli, type Started } from '../helpers/cli.js'
import { mosquittoPath } from '../helpers/mosquitto.js'

/** MQTT.js clients are event emitters whose typings node:events' once() does not accept. */
const events = (client: mqtt.MqttClient): EventEmitter => client as unknown as EventEmitter

const READY = /Press Ctrl-C to stop\./

interface Demo { started: Started; port: number; brokerPort: number; adminPort: number }

async function startDemo(args: string[] = [], env?: NodeJS.ProcessEnv): Promise<Demo> {
  const started = await startCli(['demo', '--port', '0', '--admin-port', '0', ...args], READY, env === undefined ? {} : { env })
  const out = started.output()
  const number = (re: RegExp): number => Number(re.exec(out)![1])
  return {
    started,
    port: number(/moat \(MQTT listener\)\s+mqtt:\/\/127\.0\.0\.1:(\d+)/),
    brokerPort: number(/broker\s+127\.0\.0\.1:(\d+)/),
    adminPort: number(/metrics\s+http:\/\/127\.0\.0\.1:(\d+)\/metrics/),
  }
}

async function stop(demo: Demo): Promise<number | null> {
  const exited = once(demo.started.child, 'close')
  demo.started.child.kill('SIGINT')
  return (await exited)[0] as number | null
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Runs a command line the demo printed, as a shell would, without its comment. */
function shell(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', line.replace(/\s+#.*$/, '')], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** The Mosquitto processes demos started (their config is in a moat-demo- directory). */
function demoBrokers(): string[] {
  return spawnSync('pgrep', ['-f', 'mosquitto -c .*/moat-demo-'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '')
}

const haveMosquitto = mosquittoPath() !== null
if (!haveMosquitto && process.env.CI === 'true') throw new Error('CI=true but mosquitto is not installed: the demo cannot be tested in front of it')
if (!haveMosquitto) console.warn('mosquitto not installed: skipping the demo in front of Mosquitto (apt-get install mosquitto)')

describe.skipIf(!haveMosquitto)('moat demo in front of Mosquitto', () => {
  let demo: Demo
  let direct: mqtt.MqttClient
  const seen: string[] = []

  beforeAll(async () => {
    demo = await startDemo()
    // The broker-side witness: connected to the broker itself, it sees what got through Moat.
    direct = await mqtt.connectAsync({ host: '127.0.0.1', port: demo.brokerPort, clientId: 'demo-witness', reconnectPeriod: 0, protocolVersion: 5 })
    await direct.subscribeAsync('#')
    direct.on('message', (topic, payload) => seen.push(`${topic} ${String(payload)}`))
  })

  afterAll(async () => {
    await direct?.endAsync()
    if (demo !== undefined && demo.started.child.exitCode === null) await stop(demo)
  })

  /** A message through Moat that the witness must see: everything sent before it has been judged. */
  async function barrier(text: string): Promise<void> {
    expect((await shell(`mosquitto_pub -h 127.0.0.1 -p ${demo.port} -t demo/barrier -m '${text}' -q 1`)).code).toBe(0)
    await expect.poll(() => seen.includes(`demo/barrier ${text}`)).toBe(true)
  }

  it('names Mosquitto as its broker, with MQTT 5.0', () => {
    expect(demo.started.output()).toMatch(/broker\s+127\.0\.0\.1:\d+\s+Mosquitto \d+\.\d+\.\d+ \(\/\S+mosquitto\); only Moat talks to it; MQTT 5\.0 and 3\.1\.1/)
  })

  it('answers an MQTT 5.0 CONNECT: mosquitto_pub -V mqttv5 through it reaches a 5.0 subscriber through it', async () => {
    const sub = await mqtt.connectAsync({ host: '127.0.0.1', port: demo.port, clientId: 'demo-v5-sub', reconnectPeriod: 0, protocolVersion: 5 })
    await sub.subscribeAsync('demo/v5')
    const message = once(events(sub), 'message')
    const pub = await shell(`mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 -p ${demo.port} -t demo/v5 -m 'five through moat'`)
    expect(pub).toMatchObject({ code: 0, stderr: '' })
    const [topic, payload] = await message
    expect(`${topic} ${String(payload)}`).toBe('demo/v5 five through moat')
    await sub.endAsync()
  })

  it('the commands it prints do what they say: the first passes, the refused ones reach nothing', async () => {
    const commands = demo.started.output().split('\n').filter((l) => l.trimStart().startsWith('mosquitto_pub'))
    expect(commands.map((c) => /# (.*)$/.exec(c)![1])).toEqual([
      'passes', 'refused: the ACL denies demo/admin/#', 'refused: payload over 100 bytes, client closed',
    ])
    seen.length = 0
    for (const command of commands) expect((await shell(command)).code, command).toBe(0)
    await barrier('after the printed commands')
    expect(seen).toEqual(['demo/hello hello through moat', 'demo/barrier after the printed commands'])
    // The demo's log lines are written asynchronously: the last refusal may land after the command returned.
    await expect.poll(() => demo.started.output(), { timeout: 10_000 }).toMatch(/"event":"client_refused","reason":"payload_too_large"/)
    expect(demo.started.output()).toMatch(/"event":"packet_refused","reason":"acl_denied".*"rule":"no-admin"/)
  })

  it('with -V mqttv5 -q 1 added, mosquitto_pub says why each refused one failed', async () => {
    const refused = demo.started.output().split('\n').filter((l) => l.trimStart().startsWith('mosquitto_pub') && l.includes('# refused'))
    seen.length = 0
    const [acl, payload] = await Promise.all(refused.map((c) => shell(c.replace('mosquitto_pub', 'mosquitto_pub -V mqttv5 -q 1'))))
    expect(acl!.stderr).toMatch(/Publish 1 failed: Not authorized/)
    expect(payload!.code).not.toBe(0)
    await barrier('after the 5.0 refusals')
    expect(seen).toEqual(['demo/barrier after the 5.0 refusals'])
  })

  it('stops on SIGINT and takes its Mosquitto with it', async () => {
    expect(demoBrokers().length).toBeGreaterThan(0)
    await direct.endAsync()
    expect(await stop(demo)).toBe(0)
    expect(await accepts(demo.brokerPort)).toBe(false)
    expect(demoBrokers()).toEqual([])
  })
})

describe('moat demo: errors', () => {
  it('a taken port: says to choose others with --port and --admin-port, and leaves no broker running', async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as net.AddressInfo).port
    try {
      const result = await runCli(['demo', '--port', String(port), '--admin-port', '0'])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`moat: listener 'mqtt' cannot listen on 127.0.0.1:${port}: EADDRINUSE: another program has that port; choose others with --port N and --admin-port N (0 picks a free one) [MOAT_ERR_LISTEN]\n`)
      expect(demoBrokers()).toEqual([])
    } finally {
      taken.close()
    }
    expect((await runCli(['demo', '--port', '1884', '--admin-port', '1884'])).stderr).toMatch(/^moat: --port and --admin-port are both 1884: give them different ports \[MOAT_ERR_USAGE\]\n/)
  })
})

describe('moat demo with the embedded broker', () => {
  async function relays(demo: Demo): Promise<void> {
    const sub = await mqtt.connectAsync({ host: '127.0.0.1', port: demo.port, clientId: 'demo-sub', reconnectPeriod: 0 })
    await sub.subscribeAsync('demo/#')
    const pub = await mqtt.connectAsync({ host: '127.0.0.1', port: demo.port, clientId: 'demo-pub', reconnectPeriod: 0 })
    const message = once(events(sub), 'message')
    await pub.publishAsync('demo/hello', 'hi')
    const [topic, payload] = await message
    expect(`${topic} ${String(payload)}`).toBe('demo/hello hi')
    const metrics = await (await fetch(`http://127.0.0.1:${demo.adminPort}/metrics`)).text()
    expect(metrics).toMatch(/moat_sessions_open 2/)
    await pub.endAsync()
    await sub.endAsync()
  }

  it('with --embedded: an MQTT 3.1.1 broker in the process, the same policy, and it stops on SIGINT', async () => {
    const demo = await startDemo(['--embedded'])
    expect(demo.started.output()).toMatch(/broker\s+127\.0\.0\.1:\d+\s+embedded broker \(Aedes\); only Moat talks to it; MQTT 3\.1\.1 \(install Mosquitto for 5\.0\)/)
    expect(demo.started.output()).not.toMatch(/-V mqttv5/)
    await relays(demo)
    expect(await stop(demo)).toBe(0)
  })

  it('when Mosquitto cannot start: one line saying why, with its output, and the embedded broker instead', async () => {
    // A mosquitto first on PATH that fails as a broken installation would.
    const bin = mkdtempSync(join(tmpdir(), 'moat-demo-path-'))
    writeFileSync(join(bin, 'mosquitto'), '#!/bin/sh\necho "Error: Unable to open config file." >&2\nexit 3\n')
    chmodSync(join(bin, 'mosquitto'), 0o755)
    const demo = await startDemo([], { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` })
    const out = demo.started.output()
    expect(out).toMatch(new RegExp(`WARN: ${bin}/mosquitto exited with code 3: using the embedded broker, which speaks MQTT 3\\.1\\.1 only .*"output":"Error: Unable to open config file\\."`))
    expect(out).toMatch(/embedded broker \(Aedes\)/)
    await relays(demo)
    expect(await stop(demo)).toBe(0)
  })
})
