/** Real MQTT clients for the tests: MQTT.js for honest traffic, a raw socket for hand-made bytes. */
import { EventEmitter } from 'node:events'
import net from 'node:net'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { generate, parser as createParser, type Packet } from 'mqtt-packet'
import type { ProtocolLevel } from './broker.js'

let counter = 0
/** A client id / topic segment unique within the test run. */
export function uid(prefix: string): string {
  counter++
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 7)}`
}

/** A client id short enough for MQTT 3.1 (at most 23 bytes). */
export function shortId(): string {
  counter++
  return `c${counter}-${Math.random().toString(36).slice(2, 10)}`
}

/** Test defaults: loopback, no reconnect, a fresh short client id, 'MQIsdp' for MQTT 3.1. */
function clientOptions(port: number, options: IClientOptions): IClientOptions {
  return {
    host: '127.0.0.1',
    port,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clientId: shortId(),
    ...(options.protocolVersion === 3 ? { protocolId: 'MQIsdp' } : {}),
    ...options,
  }
}

export function connect(port: number, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(clientOptions(port, options))
}

/**
 * Connects with an Inbox attached before the CONNACK, so messages a resumed session delivers right
 * after it are not missed; resolves with the CONNACK packet too.
 */
export function connectWithInbox(port: number, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox; connack: mqtt.IConnackPacket }> {
  const client = mqtt.connect(clientOptions(port, options))
  const inbox = new Inbox(client)
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, inbox, connack }))
    client.once('error', reject)
  })
}

export interface Message {
  topic: string
  payload: Buffer
  packet: mqtt.IPublishPacket
}

/** Collects every message a client receives, and lets a test wait for the next ones. */
export class Inbox {
  readonly messages: Message[] = []
  private readonly events = new EventEmitter()

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload, packet })
      this.events.emit('message')
    })
  }

  /** Resolves with the first message on `topic` (already received or still to come). */
  async waitForTopic(topic: string, timeoutMs = 5000): Promise<Message> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.messages.find((m) => m.topic === topic)
      if (found !== undefined) return found
      if (Date.now() > deadline) throw new Error(`no message on ${topic} within ${timeoutMs} ms`)
      await this.waitFor(this.messages.length + 1, Math.max(1, deadline - Date.now()))
    }
  }

  /** Resolves when `count` messages (in total) have arrived. */
  async waitFor(count: number, timeoutMs = 5000): Promise<Message[]> {
    if (this.messages.length < count) {
      // One listener for the whole wait, removed at its end (a listener per message would pile up).
      await new Promise<void>((resolve, reject) => {
        const onMessage = (): void => {
          if (this.messages.length < count) return
          clearTimeout(timer)
          this.events.off('message', onMessage)
          resolve()
        }
        const timer = setTimeout(() => {
          this.events.off('message', onMessage)
          reject(new Error(`expected ${count} message(s), got ${this.messages.length}`))
        }, timeoutMs)
        this.events.on('message', onMessage)
      })
    }
    return this.messages.slice(0, count)
  }
}

/** A raw TCP client: sends exactly the bytes a test makes, decodes what comes back. */
export class RawClient {
  readonly socket: net.Socket
  readonly packets: Packet[] = []
  /** Every byte received, in order (to compare encodings, not only decoded packets). */
  readonly bytes: Buffer[] = []
  /** Resolves when the socket is closed (by either side); `reset` when it ended with an error. */
  readonly closed: Promise<{ reset: boolean }>
  private readonly parser
  private readonly events = new EventEmitter()
  private isClosed = false

  constructor(port: number, version: ProtocolLevel = 4) {
    this.socket = net.connect(port, '127.0.0.1')
    this.parser = createParser({ protocolVersion: version })
    this.parser.on('packet', (packet: Packet) => {
      this.packets.push(packet)
      this.events.emit('packet')
    })
    this.parser.on('error', () => { /* a test reads packets, not the parser's opinion */ })
    this.socket.on('data', (d: Buffer) => {
      this.bytes.push(d)
      this.parser.parse(d)
    })
    let reset = false
    this.socket.on('error', () => { reset = true })
    this.closed = new Promise((resolve) => this.socket.on('close', () => {
      this.isClosed = true
      this.events.emit('close')
      resolve({ reset })
    }))
  }

  get isOpen(): boolean {
    return !this.isClosed
  }

  async connected(): Promise<void> {
    if (this.socket.readyState === 'open') return
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
  }

  send(bytes: Buffer | Packet): boolean {
    return this.socket.write(Buffer.isBuffer(bytes) ? bytes : generate(bytes))
  }

  /** The next packet received (in order), or null if the connection closed first. */
  async nextPacket(index = this.consumed, timeoutMs = 5000): Promise<Packet | null> {
    const deadline = Date.now() + timeoutMs
    while (this.packets.length <= index) {
      if (this.isClosed) return null
      if (Date.now() > deadline) throw new Error(`no packet #${index} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(1, deadline - Date.now()))
        const events = this.events
        function done(): void {
          clearTimeout(timer)
          events.off('packet', done)
          events.off('close', done)
          resolve()
        }
        events.once('packet', done)
        events.once('close', done)
      })
    }
    this.consumed = index + 1
    return this.packets[index]!
  }

  private consumed = 0

  destroy(): void {
    this.socket.destroy()
  }
}

/** An MQTT.js-free CONNECT for raw clients. */
export function connectPacket(clientId: string, version: ProtocolLevel = 4, extra: Record<string, unknown> = {}): Packet {
  return {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId,
    clean: true,
    keepalive: 60,
    ...extra,
  } as Packet
}

/** A raw client that has connected through `port` and received a successful CONNACK. */
export async function rawSession(port: number, clientId: string, version: ProtocolLevel = 4): Promise<RawClient> {
  const raw = new RawClient(port, version)
  await raw.connected()
  raw.send(connectPacket(clientId, version))
  const connack = await raw.nextPacket()
  if (connack?.cmd !== 'connack') throw new Error(`expected CONNACK, got ${JSON.stringify(connack)}`)
  const code = (connack as mqtt.IConnackPacket).reasonCode ?? (connack as mqtt.IConnackPacket).returnCode
  if (code !== 0) throw new Error(`CONNACK refused: ${code}`)
  return raw
}

/** A raw CONNECT through `port`: the CONNACK's code, or null when the connection closed without one. */
export async function connackCode(port: number, version: 4 | 5): Promise<number | null> {
  const raw = new RawClient(port, version)
  await raw.connected()
  raw.send(connectPacket(uid('try'), version))
  const answer = await raw.nextPacket()
  raw.destroy()
  if (answer?.cmd !== 'connack') return null
  return (answer as mqtt.IConnackPacket).reasonCode ?? (answer as mqtt.IConnackPacket).returnCode ?? null
}

/** Counts what a 5.0 subscriber on the broker itself (not through Moat) receives on `topic`. */
export async function brokerWatch(port: number, topic: string): Promise<{ count: () => number; end: () => Promise<void> }> {
  const watcher = await connect(port, { protocolVersion: 5 })
  let n = 0
  watcher.on('message', () => { n += 1 })
  await watcher.subscribeAsync(topic, { qos: 1 })
  return { count: () => n, end: () => watcher.endAsync() }
}
