/**
 * The scale-out pattern with real parts: HAProxy in TCP mode sends a PROXY v2 header to two Moat
 * instances in front of one broker. Each device's own address (not HAProxy's) reaches Moat, the
 * connections spread over both instances, and messages cross from a device on one instance to a
 * device on the other through the broker.
 */
import net from 'node:net'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { brokerKinds, startBroker, type TestBroker } from '../helpers/broker.js'
import { Inbox, uid } from '../helpers/clients.js'
import { haproxyPath, startHaproxy, type HaproxyProcess } from '../helpers/haproxy.js'
import { configWith, listener, startMoatWith, type LoggedMoat } from '../helpers/listeners.js'

const kind = brokerKinds().includes('mosquitto') ? 'mosquitto' : 'aedes'
if (haproxyPath() === null && process.env.CI === 'true') throw new Error('CI=true but haproxy is not installed (.ci/run installs it)')
if (haproxyPath() === null) console.warn('haproxy not installed: skipping the HAProxy-fronted test (apt-get install haproxy)')

/** An MQTT.js client whose TCP connection leaves from `localAddress` (MQTT.js has no option for it). */
async function connectFrom(localAddress: string, port: number, clientId: string): Promise<mqtt.MqttClient> {
  const client = new mqtt.MqttClient(() => net.connect({ host: '127.0.0.1', port, localAddress }), { clientId, reconnectPeriod: 0, protocolVersion: 4 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  return client
}

describe.runIf(haproxyPath() !== null)(`HAProxy (PROXY v2) in front of two Moat instances (${kind})`, () => {
  let broker: TestBroker
  const moats: LoggedMoat[] = []
  let lb: HaproxyProcess

  beforeAll(async () => {
    broker = await startBroker(kind)
    for (let i = 0; i < 2; i++) {
      moats.push(await startMoatWith(configWith(broker, [listener('lb', 'mqtt', { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] })])))
    }
    lb = await startHaproxy({ servers: moats.map((m) => ({ host: '127.0.0.1', port: m.moat.address('lb').port })), proxyV2: true })
  })
  afterAll(async () => {
    await lb?.stop()
    for (const m of moats) await m.moat.shutdown(0)
    await broker?.stop()
  })

  it("each instance sees the device's own address, and the devices spread over both", async () => {
    const devices = []
    for (let i = 0; i < 4; i++) devices.push(await connectFrom(`127.0.0.${10 + i}`, lb.port, uid(`dev${i}`)))
    const remotes = moats.map((m) => m.moat.sessionInfo().map((s) => s.remote.split(':')[0]).sort())
    expect(remotes.map((r) => r.length)).toEqual([2, 2]) // round robin
    expect(remotes.flat().sort()).toEqual(['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13'])
    // A message from a device on one instance reaches a device on the other, through the broker.
    const inbox = new Inbox(devices[1]!)
    await devices[1]!.subscribeAsync('fleet/hello')
    await devices[0]!.publishAsync('fleet/hello', 'from the other instance', { qos: 1 })
    expect((await inbox.waitForTopic('fleet/hello')).payload.toString()).toBe('from the other instance')
    for (const d of devices) await d.endAsync()
  })
})
