/**
 * The brokers the integration suite runs against, behind one interface: Mosquitto (a separate
 * process) and Aedes (in process), so "any unmodified broker" is tested, not assumed.
 *
 * Each broker is also its own spy: `received(clientId)` lists what the broker really got from a
 * client (Mosquitto: from its debug log; Aedes: decoded from the broker's own sockets), and
 * `clientGone(clientId)` is the
 * barrier that makes checking it sound without sleeping: once the broker has noticed a connection
 * end, it has processed every byte that was sent on it.
 */
import { startAedes } from './aedes.js'
import { mosquittoPath, startMosquitto, type MosquittoOptions } from './mosquitto.js'

export type BrokerKind = 'mosquitto' | 'aedes'
export type ProtocolLevel = 3 | 4 | 5

export interface TestBroker {
  readonly kind: BrokerKind
  readonly host: string
  readonly port: number
  /** MQTT protocol levels the broker speaks: Aedes has no 5.0. */
  readonly versions: readonly ProtocolLevel[]
  /** What the broker received from a client, in order: 'connect', 'publish <topic>', 'subscribe', 'unsubscribe', 'pingreq', 'disconnect', … */
  received(clientId: string): string[]
  /** TCP connections the broker has accepted so far. */
  connections(): number
  /** Mosquitto only: the broker's log lines (e.g. `New client connected … u'name'`). */
  logs?(): readonly string[]
  /** Resolves once the broker has seen the client's connection end. */
  clientGone(clientId: string, timeoutMs?: number): Promise<void>
  /** Mosquitto only: freeze / thaw the broker process, so it stops reading its sockets. */
  freeze?(): void
  thaw?(): void
  /** Mosquitto only: SIGTERM (clients closed; the store written with `persistence`), SIGKILL, and a start again on the same port. */
  terminate?(): Promise<void>
  kill?(): Promise<void>
  restart?(): Promise<void>
  stop(): Promise<void>
}

/** Protocol levels each broker speaks (known before it starts, so tests can be declared per level). */
export function brokerVersions(kind: BrokerKind): readonly ProtocolLevel[] {
  return kind === 'mosquitto' ? [3, 4, 5] : [3, 4]
}

let notified = false

/**
 * The broker kinds this machine can run. Mosquitto missing: its half is skipped with one line,
 * except under CI=true, where that is a failure.
 */
export function brokerKinds(): BrokerKind[] {
  if (mosquittoPath() !== null) return ['mosquitto', 'aedes']
  if (process.env.CI === 'true') throw new Error('CI=true but mosquitto is not installed: the Mosquitto half of the suite cannot run')
  if (!notified) {
    notified = true
    console.warn('mosquitto not installed: skipping the Mosquitto-backed half of the integration suite (apt-get install mosquitto)')
  }
  return ['aedes']
}

/** `mosquitto` options (auth, extra config lines) apply to Mosquitto only. */
export function startBroker(kind: BrokerKind, mosquitto: MosquittoOptions = {}): Promise<TestBroker> {
  return kind === 'mosquitto' ? startMosquittoBroker(mosquitto) : startAedesBroker()
}

function deadline(what: string, timeoutMs: number): { promise: Promise<never>; clear: () => void } {
  let timer: NodeJS.Timeout
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)
  })
  return { promise, clear: () => clearTimeout(timer) }
}

async function startMosquittoBroker(options: MosquittoOptions): Promise<TestBroker> {
  const m = await startMosquitto(options)
  const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return {
    kind: 'mosquitto',
    host: m.host,
    port: m.port,
    versions: brokerVersions('mosquitto'),
    received(clientId) {
      const id = escape(clientId)
      const out: string[] = []
      const connect = new RegExp(`^New client connected from \\S+ as ${id} \\(`)
      const packet = new RegExp(`^Received (PUBLISH|SUBSCRIBE|UNSUBSCRIBE|PINGREQ|DISCONNECT|PUBACK|PUBREC|PUBREL|PUBCOMP|AUTH) from ${id}(?: \\(d\\d, q\\d, r\\d, m\\d+, '(.*)',)?`)
      for (const line of m.logs) {
        if (connect.test(line)) out.push('connect')
        const match = packet.exec(line)
        if (match) out.push(match[2] === undefined ? match[1]!.toLowerCase() : `publish ${match[2]}`)
      }
      return out
    },
    connections() {
      return m.logs.filter((l) => /^New connection from /.test(l)).length
    },
    async clientGone(clientId, timeoutMs = 5000) {
      const id = escape(clientId)
      await m.waitForLog(new RegExp(`^(Client ${id} (disconnected|closed its connection|has exceeded timeout)|Socket error on client ${id}, disconnecting)`), timeoutMs)
    },
    logs: () => m.logs,
    freeze: () => m.freeze(),
    thaw: () => m.resume(),
    terminate: () => m.terminate(),
    kill: () => m.kill(),
    restart: () => m.restart(),
    stop: () => m.stop(),
  }
}

async function startAedesBroker(): Promise<TestBroker> {
  const a = await startAedes()
  const find = (clientId: string) => a.connections.filter((c) => c.clientId === clientId)
  return {
    kind: 'aedes',
    host: a.host,
    port: a.port,
    versions: brokerVersions('aedes'),
    received: (clientId) => find(clientId).flatMap((c) => c.received),
    connections: () => a.connections.length,
    async clientGone(clientId, timeoutMs = 5000) {
      const isGone = (): boolean => {
        const mine = find(clientId)
        return mine.length > 0 && mine.every((c) => c.closed)
      }
      if (isGone()) return
      const d = deadline(`aedes to see ${clientId} go`, timeoutMs)
      let stop = (): void => {}
      try {
        await Promise.race([
          new Promise<void>((resolve) => { stop = a.onChange(() => { if (isGone()) resolve() }) }),
          d.promise,
        ])
      } finally {
        stop()
        d.clear()
      }
    },
    stop: () => a.stop(),
  }
}
