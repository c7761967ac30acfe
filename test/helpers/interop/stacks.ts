/**
 * Three independent MQTT client stacks behind one small interface, for the interop suite
 * (test/interop/): Mosquitto's command-line clients (mosquitto_pub / mosquitto_sub, libmosquitto),
 * Eclipse Paho for Python (test/interop/paho_client.py on Debian's python3-paho-mqtt) and MQTT.js.
 *
 * A client is described up front by a ClientSpec (how to connect, what to subscribe to, what to
 * publish); startClient() runs it and records what the client observes as Events, in the same
 * normalised shape for every stack (payloads and correlation data as hex, properties camelCase).
 * A stack reports only what it can observe: mosquitto_sub prints no session-present flag, no
 * CONNACK properties and no UNSUBACK codes, mosquitto_pub no PUBREC reason code. Tests compare a
 * stack with itself (directly against the broker, then through Moat), never across stacks.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt'

export type Stack = 'mosquitto-clients' | 'paho' | 'mqtt.js'
export const STACKS: readonly Stack[] = ['mosquitto-clients', 'paho', 'mqtt.js']
/** MQTT protocol level: 4 = 3.1.1, 5 = 5.0. */
export type Version = 4 | 5
export const VERSIONS: readonly Version[] = [4, 5]
export const versionName = (v: Version): string => (v === 5 ? '5.0' : '3.1.1')

export const PYTHON = '/usr/bin/python3'
export const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub'
export const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub'
/** mosquitto_pub/sub print with stdio: line-buffered through stdbuf, or a pipe holds their lines back. */
const STDBUF = '/usr/bin/stdbuf'
const PAHO_SCRIPT = fileURLToPath(new URL('../../interop/paho_client.py', import.meta.url))

/** 5.0 PUBLISH properties, as every stack reports them. */
export interface MessageProperties {
  payloadFormatIndicator?: number
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  /** Hex. */
  correlationData?: string
  userProperties?: [string, string][]
  subscriptionIdentifiers?: number[]
  topicAlias?: number
}

export interface OutMessage {
  topic: string
  /** Hex. */
  payload: string
  qos: 0 | 1 | 2
  retain?: boolean
  properties?: MessageProperties
}

export interface Subscription {
  topic: string
  qos: 0 | 1 | 2
  /** 5.0 No Local (Paho and MQTT.js; mosquitto_sub has no option for it). */
  noLocal?: boolean
}

export interface ClientSpec {
  port: number
  version: Version
  clientId?: string
  /** Clean session (3.1.1) / clean start (5.0); default true. */
  clean?: boolean
  /** 5.0 CONNECT Session Expiry Interval. */
  sessionExpiry?: number
  /** Seconds; default 60. mosquitto_pub/sub accept 5 and up only. */
  keepalive?: number
  will?: OutMessage
  /** 5.0 CONNECT Topic Alias Maximum. */
  topicAliasMaximum?: number
  subscribe?: Subscription[]
  /** 5.0 SUBSCRIBE Subscription Identifier. */
  subscriptionIdentifier?: number
  /** Unsubscribed right after the SUBACK (mosquitto_sub: -U, one UNSUBSCRIBE per topic). */
  unsubscribe?: string[]
  publish?: OutMessage[]
}

export interface ReceivedMessage {
  topic: string
  /** Hex. */
  payload: string
  qos: number
  retain: boolean
  /** 5.0 only (undefined in 3.1.1); absent properties are left out. */
  properties?: MessageProperties
}

export type ClientEvent =
  | { event: 'connack'; code: number; sessionPresent?: boolean; properties?: Record<string, unknown> | null }
  | { event: 'suback'; codes: number[] }
  | { event: 'unsuback'; codes: number[] | null }
  | { event: 'ack'; type: 'puback' | 'pubrec' | 'pubcomp'; code: number | null }
  | ({ event: 'message' } & ReceivedMessage)
  | { event: 'pingreq' }
  | { event: 'pingresp' }
  | { event: 'disconnect'; code: number }
  | { event: 'closed' }
  | { event: 'done'; op: string }
  | { event: 'error'; message: string }

export type Ending = 'disconnect' | 'drop'

export interface ClientHandle {
  readonly stack: Stack
  readonly events: ClientEvent[]
  /** Resolves once connected, subscribed and the spec's messages published (completed for QoS 1/2), or the CONNACK refused. */
  readonly started: Promise<void>
  /** Resolves when the client is gone (process exited / connection closed). */
  readonly exited: Promise<{ code: number | null }>
  messages(): ReceivedMessage[]
  connack(): Extract<ClientEvent, { event: 'connack' }> | undefined
  /** Resolves with the first `count` messages, or throws after `timeoutMs`. */
  waitMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>
  waitEvent(match: (e: ClientEvent) => boolean, timeoutMs?: number): Promise<ClientEvent>
  /** Paho and MQTT.js only: more operations on the open connection. */
  publish(messages: OutMessage[]): Promise<void>
  unsubscribe(topics: string[]): Promise<void>
  /** 'disconnect': a normal DISCONNECT; 'drop': the connection closes without one. Resolves when exited. */
  end(how: Ending): Promise<void>
  /** Processes only (mosquitto-clients, paho): SIGSTOP, the client goes silent with its socket open. */
  freeze(): void
  /** After freeze(): SIGCONT, the client reads what reached its socket meanwhile. */
  thaw(): void
  /** Kills whatever is left (afterEach safety net). */
  kill(): void
}

/** Whether this machine has the stack's client; under CI=true a missing one is an error, not a skip. */
export function stackAvailable(stack: Stack): boolean {
  if (stack === 'mqtt.js') return true
  const ok = stack === 'paho' ? pahoInstalled() : existsSync(MOSQUITTO_PUB) && existsSync(MOSQUITTO_SUB)
  if (!ok && process.env.CI === 'true') {
    throw new Error(`CI=true but ${stack === 'paho' ? 'python3-paho-mqtt (/usr/bin/python3 -c "import paho.mqtt")' : 'mosquitto-clients'} is not installed`)
  }
  return ok
}

let pahoChecked: boolean | undefined
function pahoInstalled(): boolean {
  if (pahoChecked === undefined) {
    try {
      execFileSync(PYTHON, ['-c', 'import paho.mqtt'], { stdio: 'ignore' })
      pahoChecked = true
    } catch {
      pahoChecked = false
    }
  }
  return pahoChecked
}

export function startClient(stack: Stack, spec: ClientSpec): ClientHandle {
  switch (stack) {
    case 'paho': return new PahoClient(spec)
    case 'mqtt.js': return new MqttJsClient(spec)
    case 'mosquitto-clients': return spec.subscribe !== undefined ? new MosquittoSub(spec) : new MosquittoPub(spec)
  }
}

// ---------------------------------------------------------------------------------------------

abstract class BaseClient implements ClientHandle {
  readonly events: ClientEvent[] = []
  abstract readonly stack: Stack
  abstract readonly started: Promise<void>
  abstract readonly exited: Promise<{ code: number | null }>
  protected readonly emitter = new EventEmitter()

  protected record(e: ClientEvent): void {
    this.events.push(e)
    this.emitter.emit('event', e)
  }

  messages(): ReceivedMessage[] {
    return this.events.filter((e): e is Extract<ClientEvent, { event: 'message' }> => e.event === 'message').map(({ event: _, ...m }) => m)
  }

  connack(): Extract<ClientEvent, { event: 'connack' }> | undefined {
    return this.events.find((e): e is Extract<ClientEvent, { event: 'connack' }> => e.event === 'connack')
  }

  async waitMessages(count: number, timeoutMs = 5000): Promise<ReceivedMessage[]> {
    const have = (): boolean => this.messages().length >= count
    if (!have()) {
      await this.waitEvent(() => have(), timeoutMs).catch(() => {
        throw new Error(`${this.stack}: expected ${count} message(s) within ${timeoutMs} ms, got ${JSON.stringify(this.messages())}; events: ${JSON.stringify(this.events)}`)
      })
    }
    return this.messages().slice(0, count)
  }

  waitEvent(match: (e: ClientEvent) => boolean, timeoutMs = 5000): Promise<ClientEvent> {
    const found = this.events.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.emitter.off('event', on)
        reject(new Error(`${this.stack}: no matching event within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}`))
      }, timeoutMs)
      const on = (e: ClientEvent): void => {
        if (!match(e)) return
        clearTimeout(timer)
        this.emitter.off('event', on)
        resolve(e)
      }
      this.emitter.on('event', on)
    })
  }

  publish(_messages: OutMessage[]): Promise<void> {
    return Promise.reject(new Error(`${this.stack} cannot publish on an open connection`))
  }

  unsubscribe(_topics: string[]): Promise<void> {
    return Promise.reject(new Error(`${this.stack} cannot unsubscribe on an open connection`))
  }

  abstract end(how: Ending): Promise<void>
  abstract freeze(): void
  abstract thaw(): void
  abstract kill(): void
}

/** A child process whose stdout is read line by line. */
abstract class ProcessClient extends BaseClient {
  protected readonly child: ChildProcessWithoutNullStreams
  readonly exited: Promise<{ code: number | null }>
  protected readonly stderr: string[] = []
  private partial = ''
  private isExited = false

  constructor(command: string, args: string[]) {
    super()
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    this.child.stdin.on('error', () => { /* the process may be gone before we write */ })
    this.child.stdout.on('data', (data: Buffer) => {
      const lines = (this.partial + data.toString('utf8')).split('\n')
      this.partial = lines.pop()!
      for (const line of lines) this.line(line)
    })
    this.child.stderr.on('data', (data: Buffer) => this.stderr.push(data.toString()))
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      this.isExited = true
      if (this.partial !== '') this.line(this.partial)
      this.record({ event: 'closed' })
      resolve({ code })
    }))
  }

  protected abstract line(line: string): void

  /** Rejects if the process exits before `ready` resolves. */
  protected startedBy(ready: Promise<unknown>, timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.stack} not started within ${timeoutMs} ms; events ${JSON.stringify(this.events)}; stderr ${this.stderr.join('')}`)), timeoutMs)
      ready.then(() => { clearTimeout(timer); resolve() }, (err: unknown) => { clearTimeout(timer); reject(err as Error) })
      void this.exited.then(({ code }) => {
        clearTimeout(timer)
        if (this.connack()?.code !== undefined && this.connack()!.code !== 0) resolve() // refused: the test reads the CONNACK
        else reject(new Error(`${this.stack} exited (${code}) before it started; events ${JSON.stringify(this.events)}; stderr ${this.stderr.join('')}`))
      })
    })
  }

  freeze(): void {
    this.child.kill('SIGSTOP')
  }

  thaw(): void {
    this.child.kill('SIGCONT')
  }

  kill(): void {
    if (this.isExited) return
    this.child.kill('SIGCONT')
    this.child.kill('SIGKILL')
  }

  protected async waitExit(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.exited,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${this.stack} did not exit within ${timeoutMs} ms; events ${JSON.stringify(this.events)}`)), timeoutMs) }),
    ]).finally(() => clearTimeout(timer))
  }
}

// --- Paho ----------------------------------------------------------------------------------------

class PahoClient extends ProcessClient {
  readonly stack = 'paho' as const
  readonly started: Promise<void>

  constructor(private readonly spec: ClientSpec) {
    super(PYTHON, [PAHO_SCRIPT])
    this.child.stdin.write(JSON.stringify({ host: '127.0.0.1', ...spec }) + '\n')
    this.started = this.startedBy(this.waitEvent((e) => e.event === 'done' && e.op === 'start', 10_000))
  }

  protected line(line: string): void {
    if (line.trim() === '') return
    let raw: Record<string, unknown>
    try {
      raw = JSON.parse(line) as Record<string, unknown>
    } catch {
      this.record({ event: 'error', message: `paho printed: ${line}` })
      return
    }
    switch (raw.event) {
      case 'message': {
        const m: ReceivedMessage = { topic: raw.topic as string, payload: raw.payload as string, qos: raw.qos as number, retain: raw.retain as boolean }
        if (this.spec.version === 5) m.properties = fromPahoProperties(raw.properties as Record<string, unknown> | null)
        this.record({ event: 'message', ...m })
        return
      }
      case 'connack':
        this.record({ event: 'connack', code: raw.code as number, sessionPresent: raw.sessionPresent as boolean, properties: raw.properties as Record<string, unknown> | null })
        return
      case 'ack':
        this.record({ event: 'ack', type: raw.type as 'puback', code: raw.code as number })
        return
      default:
        this.record(raw as ClientEvent)
    }
  }

  private async op(command: Record<string, unknown>): Promise<void> {
    const op = command.op as string
    const doneBefore = this.events.filter((e) => e.event === 'done' && e.op === op).length
    this.child.stdin.write(JSON.stringify(command) + '\n')
    await this.waitEvent((e) => e.event === 'error' || this.events.filter((x) => x.event === 'done' && x.op === op).length > doneBefore, 10_000)
    const error = this.events.find((e) => e.event === 'error')
    if (error !== undefined) throw new Error(`paho: ${JSON.stringify(error)}`)
  }

  override publish(messages: OutMessage[]): Promise<void> {
    return this.op({ op: 'publish', messages })
  }

  override unsubscribe(topics: string[]): Promise<void> {
    return this.op({ op: 'unsubscribe', topics })
  }

  async end(how: Ending): Promise<void> {
    this.child.stdin.write(JSON.stringify({ op: how }) + '\n')
    this.child.stdin.end()
    await this.waitExit()
  }
}

function fromPahoProperties(p: Record<string, unknown> | null): MessageProperties {
  const out: MessageProperties = {}
  if (p === null) return out
  for (const [key, value] of Object.entries(p)) {
    if (key === 'userProperty') out.userProperties = value as [string, string][]
    else if (key === 'subscriptionIdentifier') out.subscriptionIdentifiers = value as number[]
    else (out as Record<string, unknown>)[key] = value
  }
  return out
}

// --- mosquitto_sub / mosquitto_pub -------------------------------------------------------------------

function mosquittoCommon(spec: ClientSpec): string[] {
  const args = ['-h', '127.0.0.1', '-p', String(spec.port), '-V', spec.version === 5 ? 'mqttv5' : 'mqttv311', '-d']
  if (spec.clientId !== undefined) args.push('-i', spec.clientId)
  if (spec.keepalive !== undefined) args.push('-k', String(spec.keepalive))
  if (spec.sessionExpiry !== undefined) args.push('-x', String(spec.sessionExpiry))
  if (spec.topicAliasMaximum !== undefined) args.push('-D', 'connect', 'topic-alias-maximum', String(spec.topicAliasMaximum))
  if (spec.will !== undefined) {
    const w = spec.will
    args.push('--will-topic', w.topic, '--will-qos', String(w.qos))
    if (w.payload !== '') args.push('--will-payload', Buffer.from(w.payload, 'hex').toString('utf8'))
    if (w.retain === true) args.push('--will-retain')
    args.push(...propertyArgs('will', w.properties))
  }
  return args
}

/** `-D <command> <property> <value>` arguments; text values only (a command-line argument). */
function propertyArgs(command: 'publish' | 'will', p: MessageProperties | undefined): string[] {
  if (p === undefined) return []
  const out: string[] = []
  const text = (hex: string): string => Buffer.from(hex, 'hex').toString('utf8')
  if (p.payloadFormatIndicator !== undefined) out.push('-D', command, 'payload-format-indicator', String(p.payloadFormatIndicator))
  if (p.messageExpiryInterval !== undefined) out.push('-D', command, 'message-expiry-interval', String(p.messageExpiryInterval))
  if (p.contentType !== undefined) out.push('-D', command, 'content-type', p.contentType)
  if (p.responseTopic !== undefined) out.push('-D', command, 'response-topic', p.responseTopic)
  if (p.correlationData !== undefined) out.push('-D', command, 'correlation-data', text(p.correlationData))
  for (const [k, v] of p.userProperties ?? []) out.push('-D', command, 'user-property', k, v)
  if (p.topicAlias !== undefined && command === 'publish') out.push('-D', command, 'topic-alias', String(p.topicAlias))
  return out
}

/** A `-d` line from libmosquitto, as an event (or null). */
function mosquittoDebugEvent(line: string): ClientEvent | null {
  let m = /received CONNACK \((\d+)\)/.exec(line)
  if (m !== null) return { event: 'connack', code: Number(m[1]) }
  m = /^Subscribed \(mid: \d+\): (.*)$/.exec(line)
  if (m !== null) return { event: 'suback', codes: m[1]!.split(',').map((s) => Number(s.trim())) }
  if (/received UNSUBACK/.test(line)) return { event: 'unsuback', codes: null }
  m = /received (PUBACK|PUBREC|PUBCOMP) \(Mid: \d+(?:, RC:(\d+))?\)/.exec(line)
  if (m !== null) return { event: 'ack', type: m[1]!.toLowerCase() as 'puback', code: m[2] === undefined ? null : Number(m[2]) }
  if (/sending PINGREQ/.test(line)) return { event: 'pingreq' }
  if (/received PINGRESP/.test(line)) return { event: 'pingresp' }
  m = /received DISCONNECT \((\d+)\)/.exec(line)
  if (m !== null) return { event: 'disconnect', code: Number(m[1]) }
  return null
}

class MosquittoSub extends ProcessClient {
  readonly stack = 'mosquitto-clients' as const
  readonly started: Promise<void>

  constructor(private readonly spec: ClientSpec) {
    const subs = spec.subscribe!
    const qos = subs[0]?.qos ?? 0
    if (subs.some((s) => s.qos !== qos)) throw new Error('mosquitto_sub subscribes every topic with one QoS')
    if (subs.some((s) => s.noLocal === true)) throw new Error('mosquitto_sub has no No Local option')
    if (spec.publish !== undefined) throw new Error('mosquitto_sub cannot publish')
    const args = [...mosquittoCommon(spec), '-q', String(qos), '-F', 'MSG %x %j']
    if (spec.clean === false) args.push('-c')
    for (const s of subs) args.push('-t', s.topic)
    if (spec.subscriptionIdentifier !== undefined) args.push('-D', 'subscribe', 'subscription-identifier', String(spec.subscriptionIdentifier))
    for (const t of spec.unsubscribe ?? []) args.push('-U', t)
    super(STDBUF, ['-oL', MOSQUITTO_SUB, ...args])
    const unsubacks = spec.unsubscribe?.length ?? 0
    this.started = this.startedBy(this.waitEvent(() => this.events.some((e) => e.event === 'suback') &&
      this.events.filter((e) => e.event === 'unsuback').length >= unsubacks, 10_000))
  }

  protected line(line: string): void {
    if (line.startsWith('MSG ')) {
      const space = line.indexOf(' ', 4)
      const hex = line.slice(4, space)
      const json = JSON.parse(line.slice(space + 1)) as { topic: string; qos: number; retain: number; properties?: Record<string, unknown> }
      const m: ReceivedMessage = { topic: json.topic, payload: hex, qos: json.qos, retain: json.retain === 1 }
      if (this.spec.version === 5) m.properties = fromMosquittoJson(json.properties)
      this.record({ event: 'message', ...m })
      return
    }
    const e = mosquittoDebugEvent(line)
    if (e !== null) this.record(e)
  }

  /** SIGINT: mosquitto_sub sends DISCONNECT and exits. SIGKILL: no DISCONNECT. */
  async end(how: Ending): Promise<void> {
    this.child.kill('SIGCONT')
    if (how === 'disconnect') {
      // mosquitto_sub's SIGINT handler sends the DISCONNECT from inside the signal handler; landing
      // while its loop is still handling the packet it just printed, it can hang for good (seen
      // once in a few runs right after a PINGRESP). Let the loop go back to waiting first.
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
    this.child.kill(how === 'disconnect' ? 'SIGINT' : 'SIGKILL')
    await this.waitExit()
  }
}

/** mosquitto_sub -F %j properties (user properties as an object: repeated keys collapse). */
function fromMosquittoJson(p: Record<string, unknown> | undefined): MessageProperties {
  const out: MessageProperties = {}
  if (p === undefined) return out
  for (const [key, value] of Object.entries(p)) {
    switch (key) {
      case 'user-properties': out.userProperties = Object.entries(value as Record<string, string>); break
      case 'content-type': out.contentType = value as string; break
      case 'response-topic': out.responseTopic = value as string; break
      case 'correlation-data': out.correlationData = Buffer.from(value as string, 'utf8').toString('hex'); break
      case 'payload-format-indicator': out.payloadFormatIndicator = value as number; break
      case 'message-expiry-interval': out.messageExpiryInterval = value as number; break
      case 'subscription-identifier': out.subscriptionIdentifiers = Array.isArray(value) ? value as number[] : [value as number]; break
      case 'topic-alias': out.topicAlias = value as number; break
      default: (out as Record<string, unknown>)[key] = value
    }
  }
  return out
}

/**
 * mosquitto_pub. With messages that share topic, QoS, retain and properties and have one-line text
 * payloads (later ones may use the first one's topic alias with an empty topic), or with none: `-l`,
 * one line on stdin per message, connected until end() (closing stdin: DISCONNECT; or SIGKILL). With
 * one message otherwise: `-s` (binary payload on stdin) or `-n` (empty), and it disconnects by itself.
 */
class MosquittoPub extends ProcessClient {
  readonly stack = 'mosquitto-clients' as const
  readonly started: Promise<void>
  private readonly lineMode: boolean

  constructor(spec: ClientSpec) {
    const messages = spec.publish ?? []
    const first = messages[0]
    const sameAsFirst = (m: OutMessage): boolean => first !== undefined && m.qos === first.qos && (m.retain ?? false) === (first.retain ?? false) &&
      JSON.stringify(m.properties ?? {}) === JSON.stringify(first.properties ?? {}) &&
      (m.topic === first.topic || (m.topic === '' && first.properties?.topicAlias !== undefined))
    const textLine = (m: OutMessage): boolean => m.payload !== '' && !/[\n\0]/.test(Buffer.from(m.payload, 'hex').toString('latin1'))
    const lineMode = messages.length === 0 || (messages.every(sameAsFirst) && messages.every(textLine))
    if (!lineMode && messages.length > 1) throw new Error('mosquitto_pub: these messages need one mosquitto_pub each')
    const args = mosquittoCommon(spec)
    if (spec.clean === false) args.push('-c')
    const topic = first?.topic ?? spec.will?.topic ?? 'unused'
    args.push('-t', topic)
    if (first !== undefined) {
      args.push('-q', String(first.qos))
      if (first.retain === true) args.push('-r')
      args.push(...propertyArgs('publish', first.properties))
    }
    if (lineMode) args.push('-l')
    else if (first!.payload === '') args.push('-n')
    else args.push('-s')
    super(STDBUF, ['-oL', MOSQUITTO_PUB, ...args])
    this.lineMode = lineMode
    if (lineMode) {
      for (const m of messages) this.child.stdin.write(Buffer.concat([Buffer.from(m.payload, 'hex'), Buffer.from('\n')]))
    } else {
      this.child.stdin.end(Buffer.from(first!.payload, 'hex'))
    }
    const completions = (m: OutMessage): ((e: ClientEvent) => boolean) => m.qos === 0
      ? () => false
      : (e) => e.event === 'ack' && e.type === (m.qos === 1 ? 'puback' : 'pubcomp')
    const ready = lineMode
      ? (async () => {
          await this.waitEvent((e) => e.event === 'connack', 10_000)
          // QoS 0 completes when sent: libmosquitto logs "sending PUBLISH" (kept as a 'done' event).
          const needed = messages.length
          const count = (): number => this.events.filter((e) => messages.some((m) => completions(m)(e)) || (e.event === 'done' && e.op === 'publish')).length
          if (needed > 0 && count() < needed) await this.waitEvent(() => count() >= needed, 10_000)
        })()
      : this.exited
    this.started = this.startedBy(ready)
  }

  protected line(line: string): void {
    if (/sending PUBLISH \(d\d, q0/.test(line)) {
      this.record({ event: 'done', op: 'publish' })
      return
    }
    const e = mosquittoDebugEvent(line)
    if (e !== null) this.record(e)
  }

  async end(how: Ending): Promise<void> {
    this.child.kill('SIGCONT')
    if (how === 'disconnect') {
      if (!this.lineMode) {
        await this.waitExit()
        return
      }
      this.child.stdin.end()
    } else {
      this.child.kill('SIGKILL')
    }
    await this.waitExit()
  }
}

// --- MQTT.js ---------------------------------------------------------------------------------------

class MqttJsClient extends BaseClient {
  readonly stack = 'mqtt.js' as const
  readonly started: Promise<void>
  readonly exited: Promise<{ code: number | null }>
  private readonly client: MqttClient

  constructor(private readonly spec: ClientSpec) {
    super()
    const v5 = spec.version === 5
    const options: IClientOptions = {
      host: '127.0.0.1',
      port: spec.port,
      protocolVersion: spec.version,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clean: spec.clean ?? true,
      keepalive: spec.keepalive ?? 60,
      ...(spec.clientId !== undefined ? { clientId: spec.clientId } : { clientId: '' }),
    }
    const props: Record<string, unknown> = {}
    if (spec.sessionExpiry !== undefined) props.sessionExpiryInterval = spec.sessionExpiry
    if (spec.topicAliasMaximum !== undefined) props.topicAliasMaximum = spec.topicAliasMaximum
    if (v5 && Object.keys(props).length > 0) options.properties = props
    if (spec.will !== undefined) {
      const w = spec.will
      options.will = { topic: w.topic, payload: Buffer.from(w.payload, 'hex'), qos: w.qos, retain: w.retain ?? false, ...(v5 && w.properties !== undefined ? { properties: toMqttJsProperties(w.properties) } : {}) }
    }
    const client = mqtt.connect(options)
    this.client = client
    this.client.on('error', (err) => this.record({ event: 'error', message: err.message }))
    this.client.on('packetsend', (packet) => { if (packet.cmd === 'pingreq') this.record({ event: 'pingreq' }) })
    this.client.on('packetreceive', (packet) => {
      switch (packet.cmd) {
        case 'connack':
          this.record({ event: 'connack', code: (v5 ? packet.reasonCode : packet.returnCode) ?? 0, sessionPresent: packet.sessionPresent, properties: v5 ? normaliseValues(packet.properties ?? null) : null })
          break
        case 'suback':
          this.record({ event: 'suback', codes: (packet.granted as Array<number | { qos: number }>).map((g) => (typeof g === 'number' ? g : g.qos)) })
          break
        case 'unsuback':
          this.record({ event: 'unsuback', codes: v5 ? (packet as unknown as { granted: number[] }).granted : null })
          break
        case 'puback': case 'pubrec': case 'pubcomp':
          this.record({ event: 'ack', type: packet.cmd, code: packet.reasonCode ?? 0 })
          break
        case 'pingresp':
          this.record({ event: 'pingresp' })
          break
        case 'disconnect':
          this.record({ event: 'disconnect', code: packet.reasonCode ?? 0 })
          break
        case 'publish': {
          const m: ReceivedMessage = { topic: packet.topic, payload: Buffer.from(packet.payload).toString('hex'), qos: packet.qos, retain: packet.retain }
          if (v5) m.properties = fromMqttJsProperties(packet.properties)
          this.record({ event: 'message', ...m })
          break
        }
      }
    })
    this.exited = new Promise((resolve) => this.client.once('close', () => {
      this.record({ event: 'closed' })
      resolve({ code: null })
    }))
    this.started = (async () => {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('mqtt.js: no CONNACK within 10 s')), 10_000)
        client.once('connect', () => { clearTimeout(timer); resolve() })
        client.once('close', () => { clearTimeout(timer); if (this.connack() !== undefined) resolve(); else reject(new Error(`mqtt.js: closed before CONNACK; events ${JSON.stringify(this.events)}`)) })
      })
      if (this.connack()?.code !== 0) return
      if (spec.subscribe !== undefined) {
        await client.subscribeAsync(Object.fromEntries(spec.subscribe.map((s) => [s.topic, { qos: s.qos, ...(s.noLocal === true ? { nl: true } : {}) }])), {
          ...(v5 && spec.subscriptionIdentifier !== undefined ? { properties: { subscriptionIdentifier: spec.subscriptionIdentifier } } : {}),
        } as mqtt.IClientSubscribeOptions)
      }
      if (spec.unsubscribe !== undefined) await this.unsubscribe(spec.unsubscribe)
      await this.publish(spec.publish ?? [])
    })()
  }

  override async publish(messages: OutMessage[]): Promise<void> {
    for (const m of messages) {
      const options: IClientPublishOptions = { qos: m.qos, retain: m.retain ?? false }
      if (this.spec.version === 5 && m.properties !== undefined) options.properties = toMqttJsProperties(m.properties)
      await this.client.publishAsync(m.topic, Buffer.from(m.payload, 'hex'), options)
    }
  }

  override async unsubscribe(topics: string[]): Promise<void> {
    await this.client.unsubscribeAsync(topics)
  }

  async end(how: Ending): Promise<void> {
    if (how === 'disconnect') await this.client.endAsync()
    else {
      this.client.stream.destroy() // no DISCONNECT
      this.client.end(true)
    }
    await this.exited
  }

  freeze(): void {
    throw new Error('mqtt.js runs in the test process: it cannot be frozen')
  }

  thaw(): void {
    throw new Error('mqtt.js runs in the test process: it cannot be frozen')
  }

  kill(): void {
    this.client.end(true)
  }
}

function toMqttJsProperties(p: MessageProperties): NonNullable<IClientPublishOptions['properties']> {
  const out: Record<string, unknown> = {}
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator === 1
  if (p.messageExpiryInterval !== undefined) out.messageExpiryInterval = p.messageExpiryInterval
  if (p.contentType !== undefined) out.contentType = p.contentType
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic
  if (p.correlationData !== undefined) out.correlationData = Buffer.from(p.correlationData, 'hex')
  if (p.topicAlias !== undefined) out.topicAlias = p.topicAlias
  if (p.userProperties !== undefined) {
    const user: Record<string, string | string[]> = {}
    for (const [k, v] of p.userProperties) {
      const had = user[k]
      user[k] = had === undefined ? v : [...(Array.isArray(had) ? had : [had]), v]
    }
    out.userProperties = user
  }
  return out as NonNullable<IClientPublishOptions['properties']>
}

function fromMqttJsProperties(p: Record<string, unknown> | undefined): MessageProperties {
  const out: MessageProperties = {}
  if (p === undefined) return out
  for (const [key, value] of Object.entries(p)) {
    switch (key) {
      case 'payloadFormatIndicator': out.payloadFormatIndicator = value === true ? 1 : 0; break
      case 'correlationData': out.correlationData = Buffer.from(value as Buffer).toString('hex'); break
      case 'subscriptionIdentifier': out.subscriptionIdentifiers = Array.isArray(value) ? value as number[] : [value as number]; break
      case 'userProperties':
        out.userProperties = Object.entries(value as Record<string, string | string[]>).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x): [string, string] => [k, x]))
        break
      default: (out as Record<string, unknown>)[key] = value
    }
  }
  return out
}

function normaliseValues(p: Record<string, unknown> | null): Record<string, unknown> | null {
  if (p === null) return null
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('hex') : v]))
}
