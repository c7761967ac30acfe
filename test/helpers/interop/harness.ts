/**
 * The interop suite's frame: one real Mosquitto per test file and one Moat in front of it (a
 * transparent config: anonymous clients, no ACL, default limits, maxPacketSize MAX_SIZE), and each scenario run twice
 * with the same client stack, once directly against Mosquitto and once through Moat, so a test can
 * assert `moat == direct` (and the expected value itself on `direct`).
 */
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest'
import mqtt, { type MqttClient } from 'mqtt'
import { MAX_SIZE } from '../../../src/config/units.js'
import type { Moat } from '../../../src/moat.js'
import { uid } from '../clients.js'
import { startMoat, type MoatOverrides } from '../moat.js'
import { mosquittoPath, startMosquitto, type MosquittoOptions, type MosquittoProcess } from '../mosquitto.js'
import { stackAvailable, startClient, versionName, type ClientHandle, type ClientSpec, type ReceivedMessage, type Stack, type Version } from './stacks.js'

export type TargetName = 'direct' | 'moat'

export interface InteropEnv {
  readonly broker: MosquittoProcess
  readonly moat: Moat
  port(target: TargetName): number
}

/**
 * Declares a file's tests with a Mosquitto and a Moat started once for them. Without Mosquitto the
 * file is skipped with one line, except under CI=true, where that is a failure (as in
 * helpers/broker.ts).
 */
export function interopSuite(title: string, body: (env: () => InteropEnv) => void, options: { mosquitto?: MosquittoOptions; moat?: MoatOverrides } = {}): void {
  if (mosquittoPath() === null) {
    if (process.env.CI === 'true') throw new Error('CI=true but mosquitto is not installed: the interop suite cannot run')
    it.skip(`${title}: needs mosquitto (apt-get install mosquitto mosquitto-clients python3-paho-mqtt)`, () => {})
    return
  }
  describe(title, () => {
    let broker: MosquittoProcess
    let moat: Moat
    beforeAll(async () => {
      broker = await startMosquitto(options.mosquitto)
      // Transparent: anonymous clients, no ACL, default limits but for maxPacketSize at the largest
      // MQTT packet (a cap below it is a real limit that Moat announces in a 5.0 CONNACK).
      moat = await startMoat({ host: broker.host, port: broker.port }, { ...options.moat, limits: { maxPacketSize: MAX_SIZE, ...options.moat?.limits } })
    })
    afterAll(async () => {
      await moat?.shutdown(0)
      await broker?.stop()
    })
    afterEach(() => {
      for (const c of live.splice(0)) c.kill()
      for (const c of observers.splice(0)) c.end(true)
    })
    body(() => ({ broker, moat, port: (t) => (t === 'direct' ? broker.port : moat.address().port) }))
  })
}

/**
 * One describe block per stack × version (of those given), for the stacks this machine has. A
 * missing mosquitto-clients or paho is a one-line skip, except under CI=true (stackAvailable throws).
 */
export function forStacks(stacks: readonly Stack[], versions: readonly Version[], body: (stack: Stack, version: Version) => void): void {
  for (const stack of stacks) {
    for (const version of versions) {
      describe(`${stack}, MQTT ${versionName(version)}`, () => {
        if (!stackAvailable(stack)) {
          it.skip(`needs ${stack === 'paho' ? 'python3-paho-mqtt' : 'mosquitto-clients'}`, () => {})
          return
        }
        body(stack, version)
      })
    }
  }
}

const live: ClientHandle[] = []
const observers: MqttClient[] = []

/** One run of a scenario: its own topic namespace, and the clients it started (killed after the test). */
export class Run {
  /** Every topic and client id of this run starts with it; results show it as `T`. */
  readonly base = uid('io')

  constructor(readonly target: TargetName, readonly env: InteropEnv) {}

  get port(): number {
    return this.env.port(this.target)
  }

  topic(suffix: string): string {
    return `${this.base}/${suffix}`
  }

  id(suffix: string): string {
    return `${this.base}-${suffix}`
  }

  start(stack: Stack, spec: Omit<ClientSpec, 'port'> & { port?: number }): ClientHandle {
    const client = startClient(stack, { port: this.port, ...spec })
    live.push(client)
    return client
  }

  /**
   * An MQTT.js 5.0 client connected to the broker directly (never through Moat): the broker's view,
   * e.g. whether a will was published. Subscribed to `filters` at QoS 2 before this resolves.
   */
  async observer(filters: string[]): Promise<Observer> {
    const client = await mqtt.connectAsync({ host: '127.0.0.1', port: this.env.broker.port, protocolVersion: 5, reconnectPeriod: 0, clientId: this.id('observer') })
    observers.push(client)
    const observer = new Observer(client)
    await client.subscribeAsync(filters, { qos: 2 })
    return observer
  }

  /** Resolves once the broker has logged the end of client `clientId`'s connection; returns how it ended. */
  async brokerSawGone(clientId: string, timeoutMs = 10_000): Promise<string> {
    const escaped = clientId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const line = await this.env.broker.waitForLog(new RegExp(`^(Client ${escaped} (disconnected|closed its connection|has exceeded timeout)|Socket error on client ${escaped}|Bad socket read/write on client ${escaped})`), timeoutMs)
    return line.replace(`Client ${clientId} `, '').replace(` ${clientId}`, '').replace(/,.*$/, '').replace(/\.$/, '')
  }

  /** Replaces this run's base with `T` everywhere in a result (topics, client ids), rounds expiry intervals to 10 s. */
  normalise<T>(value: T): T {
    return JSON.parse(JSON.stringify(value, (key, v: unknown) => {
      if (typeof v === 'string') {
        if (key === 'assignedClientIdentifier') return '<assigned by the broker>'
        return v.split(this.base).join('T')
      }
      if (key === 'messageExpiryInterval' && typeof v === 'number') return Math.round(v / 10) * 10
      return v
    })) as T
  }
}

/** Messages an observer received, in order. */
export class Observer {
  readonly messages: ReceivedMessage[] = []
  private wake: (() => void) | null = null

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const props = packet.properties ?? {}
      this.messages.push({
        topic,
        payload: payload.toString('hex'),
        qos: packet.qos,
        retain: packet.retain,
        properties: {
          ...(props.userProperties !== undefined ? { userProperties: Object.entries(props.userProperties).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x): [string, string] => [k, x])) } : {}),
          ...(props.contentType !== undefined ? { contentType: props.contentType } : {}),
        },
      })
      this.wake?.()
    })
  }

  /** Waits for a message on `topic`; throws after `timeoutMs`. */
  async waitTopic(topic: string, timeoutMs = 10_000): Promise<ReceivedMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.messages.find((m) => m.topic === topic)
      if (found !== undefined) return found
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`observer: nothing on ${topic} within ${timeoutMs} ms; got ${JSON.stringify(this.messages.map((m) => m.topic))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  /** Publishes `marker` on `topic` (directly at the broker) and waits for it: every message the broker had routed to this observer before it has arrived. */
  async barrier(topic: string): Promise<void> {
    await this.client.publishAsync(topic, 'marker', { qos: 1 })
    await this.waitTopic(topic)
  }
}

/**
 * Runs `scenario` against the broker directly, then through Moat (each with its own topics), and
 * returns both results, normalised. `concurrent`: both at once (for scenarios that mostly wait).
 */
export async function directAndMoat<T>(env: InteropEnv, scenario: (run: Run) => Promise<T>, options: { concurrent?: boolean } = {}): Promise<{ direct: T; moat: T }> {
  const once = async (target: TargetName): Promise<T> => {
    const run = new Run(target, env)
    return run.normalise(await scenario(run))
  }
  if (options.concurrent === true) {
    const [direct, moat] = await Promise.all([once('direct'), once('moat')])
    return { direct, moat }
  }
  const direct = await once('direct')
  const moat = await once('moat')
  return { direct, moat }
}

/** Text as hex (payloads and correlation data travel as hex). */
export const hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex')
