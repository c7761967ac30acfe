/**
 * `moat demo`: a broker on a loopback port only Moat knows, and Moat in front of it with a small
 * policy (a denied topic, a payload cap), so a newcomer sees the proxy work and refuse. The broker
 * is this machine's Mosquitto when it is installed (MQTT 5.0 and 3.1.1, started and stopped by the
 * demo), else the embedded Aedes (MQTT 3.1.1 only).
 */
import net from 'node:net'
import { Aedes } from 'aedes'
import { configFromObject } from './config/load.js'
import { MoatError } from './errors.js'
import type { Logger } from './log/logger.js'
import { Moat } from './moat.js'
import { findMosquitto, MosquittoFailed, startMosquitto } from './demo/mosquitto.js'

export interface DemoOptions {
  port: number
  adminPort: number
  logger: Logger
  /** Use the embedded broker even when Mosquitto is installed. */
  embedded?: boolean
}

interface DemoBroker {
  /** How the banner names it. */
  readonly name: string
  readonly port: number
  readonly mqtt5: boolean
  stop(): Promise<void>
}

export interface RunningDemo {
  moat: Moat
  broker: DemoBroker
  stop(): Promise<void>
}

/** What the demo's policy allows and refuses; the banner's commands show each. */
export const DEMO_MAX_PAYLOAD = 100
const policy = {
  acl: [
    { name: 'no-admin', deny: 'all', topic: 'demo/admin/#' },
    { name: 'demo', allow: 'all', topic: 'demo/#' },
  ],
  limits: { maxPacketSize: '256KiB', connectTimeout: '10s', maxPayload: `${DEMO_MAX_PAYLOAD}B` },
}

async function aedesBroker(): Promise<DemoBroker> {
  const broker = await Aedes.createBroker()
  const server = net.createServer(broker.handle)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    name: 'embedded broker (Aedes)',
    port: (server.address() as net.AddressInfo).port,
    mqtt5: false,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await new Promise<void>((resolve) => broker.close(() => resolve()))
    },
  }
}

/** Mosquitto when it is installed and starts; otherwise Aedes, and one line saying why. */
async function demoBroker(options: DemoOptions): Promise<DemoBroker> {
  const log = options.logger
  const binary = options.embedded === true ? null : findMosquitto()
  if (binary === null) {
    if (options.embedded !== true) log.warn({ event: 'demo_broker' }, 'no mosquitto on PATH nor in /usr/sbin: using the embedded broker, which speaks MQTT 3.1.1 only (MQTT 5.0 needs Mosquitto installed: apt-get install mosquitto)')
    return aedesBroker()
  }
  try {
    const m = await startMosquitto(binary)
    m.onUnexpectedExit = (output) => log.error({ event: 'demo_broker', output }, `${binary} exited: the demo has no broker any more (Ctrl-C to stop)`)
    return { name: `Mosquitto${m.version === null ? '' : ' ' + m.version} (${binary})`, port: m.port, mqtt5: true, stop: () => m.stop() }
  } catch (err) {
    if (!(err instanceof MosquittoFailed)) throw err
    log.warn({ event: 'demo_broker', output: err.output }, `${err.message}: using the embedded broker, which speaks MQTT 3.1.1 only`)
    return aedesBroker()
  }
}

export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const broker = await demoBroker(options)
  let moat: Moat
  try {
    const config = configFromObject({
      listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: options.port }],
      upstream: { host: '127.0.0.1', port: broker.port, connectTimeout: '2s' },
      admin: { host: '127.0.0.1', port: options.adminPort },
      shutdown: { gracePeriod: '1s' },
      // The demo lets anonymous clients in, so the commands it prints work as written.
      // A real config denies them unless it says `auth: { anonymous: true }`.
      auth: { anonymous: true },
      ...policy,
    }, 'moat demo')
    moat = new Moat(config, { logger: options.logger })
    options.logger.warn({ event: 'auth_anonymous' }, 'demo: anonymous clients are allowed (a config file denies them unless auth.anonymous is true)')
    await moat.start()
  } catch (err) {
    await broker.stop()
    if (err instanceof MoatError && err.code === 'MOAT_ERR_LISTEN') {
      throw new MoatError('MOAT_ERR_LISTEN', `${err.message}: another program has that port; choose others with --port N and --admin-port N (0 picks a free one)`)
    }
    throw err
  }
  return {
    moat,
    broker,
    async stop() {
      await moat.shutdown()
      await broker.stop()
    },
  }
}

export function demoBanner(demo: RunningDemo): string {
  const { port } = demo.moat.address()
  const admin = demo.moat.adminAddress()
  const pub = `mosquitto_pub -h 127.0.0.1 -p ${port}`
  const big = `"$(printf '%0${DEMO_MAX_PAYLOAD + 1}d' 0)"`
  return [
    '',
    'Moat demo is running.',
    `  moat (MQTT listener)  mqtt://127.0.0.1:${port}`,
    `  broker                127.0.0.1:${demo.broker.port}  ${demo.broker.name}; only Moat talks to it; MQTT ${demo.broker.mqtt5 ? '5.0 and 3.1.1' : '3.1.1 (install Mosquitto for 5.0)'}`,
    admin ? `  metrics               http://127.0.0.1:${admin.port}/metrics` : null,
    '',
    `The policy: topics under demo/ only, not demo/admin/ (rule no-admin), payloads up to ${DEMO_MAX_PAYLOAD} bytes.`,
    '',
    'Try it from another terminal:',
    `  mosquitto_sub -h 127.0.0.1 -p ${port} -t 'demo/#' -v`,
    `  ${pub} -t demo/hello -m 'hello through moat'    # passes`,
    `  ${pub} -t demo/admin/reboot -m now             # refused: the ACL denies demo/admin/#`,
    `  ${pub} -t demo/hello -m ${big}  # refused: payload over ${DEMO_MAX_PAYLOAD} bytes, client closed`,
    demo.broker.mqtt5 ? '  (with -V mqttv5 -q 1 added, mosquitto_pub says why each refused one failed)' : null,
    'or, with no Mosquitto tools installed:',
    `  npx mqtt sub -h 127.0.0.1 -p ${port} -t 'demo/#' -v`,
    `  npx mqtt pub -h 127.0.0.1 -p ${port} -t demo/hello -m 'hello through moat'`,
    '',
    'Every packet is framed and validated; a malformed one closes only its client.',
    'Anonymous clients are allowed in the demo only; a config file refuses them by default (auth).',
    'Press Ctrl-C to stop.',
    '',
  ].filter((line) => line !== null).join('\n')
}
