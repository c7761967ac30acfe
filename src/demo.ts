/**
 * `moat demo`: an embedded broker (Aedes, MQTT 3.1/3.1.1) on a loopback port only Moat knows, and
 * Moat in front of it, so a newcomer sees the proxy work with nothing else installed.
 */
import net from 'node:net'
import { Aedes } from 'aedes'
import { configFromObject } from './config/load.js'
import type { Logger } from './log/logger.js'
import { Moat } from './moat.js'

export interface DemoOptions {
  port: number
  adminPort: number
  logger: Logger
}

export interface RunningDemo {
  moat: Moat
  brokerPort: number
  stop(): Promise<void>
}

export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const broker = await Aedes.createBroker()
  const brokerServer = net.createServer(broker.handle)
  await new Promise<void>((resolve, reject) => {
    brokerServer.once('error', reject)
    brokerServer.listen(0, '127.0.0.1', () => resolve())
  })
  const address = brokerServer.address() as net.AddressInfo
  const config = configFromObject({
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: options.port }],
    upstream: { host: '127.0.0.1', port: address.port, connectTimeout: '2s' },
    admin: { host: '127.0.0.1', port: options.adminPort },
    limits: { maxPacketSize: '256KiB', connectTimeout: '10s' },
    shutdown: { gracePeriod: '1s' },
    // The demo lets anonymous clients in, so the README's mosquitto_pub/sub commands work as written.
    // A real config denies them unless it says `auth: { anonymous: true }`.
    auth: { anonymous: true },
  }, 'moat demo')
  const moat = new Moat(config, { logger: options.logger })
  options.logger.warn({ event: 'auth_anonymous' }, 'demo: anonymous clients are allowed (a config file denies them unless auth.anonymous is true)')
  try {
    await moat.start()
  } catch (err) {
    brokerServer.close()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    throw err
  }
  return {
    moat,
    brokerPort: address.port,
    async stop() {
      await moat.shutdown()
      await new Promise<void>((resolve) => brokerServer.close(() => resolve()))
      await new Promise<void>((resolve) => broker.close(() => resolve()))
    },
  }
}

export function demoBanner(demo: RunningDemo): string {
  const { port } = demo.moat.address()
  const admin = demo.moat.adminAddress()
  return [
    '',
    'Moat demo is running.',
    `  moat (MQTT listener)      mqtt://127.0.0.1:${port}`,
    `  embedded broker (Aedes)   127.0.0.1:${demo.brokerPort}  (only Moat talks to it; MQTT 3.1/3.1.1)`,
    admin ? `  metrics                   http://127.0.0.1:${admin.port}/metrics` : '',
    '',
    'Try it from another terminal:',
    `  mosquitto_sub -h 127.0.0.1 -p ${port} -t 'demo/#' -v`,
    `  mosquitto_pub -h 127.0.0.1 -p ${port} -t demo/hello -m 'hello through moat'`,
    'or, with no Mosquitto tools installed:',
    `  npx mqtt sub -h 127.0.0.1 -p ${port} -t 'demo/#' -v`,
    `  npx mqtt pub -h 127.0.0.1 -p ${port} -t demo/hello -m 'hello through moat'`,
    '',
    'Every packet is framed and validated; a malformed one closes only its client.',
    'Anonymous clients are allowed in the demo only; a config file refuses them by default (auth).',
    'Press Ctrl-C to stop.',
    '',
  ].filter((line, i, all) => line !== '' || all[i - 1] !== '').join('\n')
}
