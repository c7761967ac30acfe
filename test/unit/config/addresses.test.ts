/**
 * What fails at start is refused at load: two listeners, or the admin endpoint and a listener, that
 * cannot both bind, and a listener or admin endpoint on the broker's own address. Each pair here
 * was bound for real (node:net, Linux, dual-stack `::`) to see which ones collide; configs that
 * start are accepted.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load.js'
import { ConfigError } from '../../../src/errors.js'

function issues(lines: string[]): Array<{ path: string; line?: number; message: string }> {
  try {
    parseConfig(lines.join('\n') + '\n', 'moat.yaml')
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, line: i.line, message: i.message }))
    throw err
  }
  return []
}

const listeners = (...binds: string[]): string[] => [
  'listeners:',
  ...binds.map((b, i) => {
    const colon = b.lastIndexOf(':')
    return `  - { name: l${i}, protocol: mqtt, host: "${b.slice(0, colon)}", port: ${b.slice(colon + 1)} }`
  }),
]

/** Whether the second of two real binds on one free port fails. */
async function secondBindFails(a: string, b: string): Promise<boolean> {
  const probe = net.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '::', resolve))
  const { port } = probe.address() as net.AddressInfo
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const first = net.createServer()
  await new Promise<void>((resolve, reject) => { first.once('error', reject); first.listen(port, a, resolve) })
  const second = net.createServer()
  const failed = await new Promise<boolean>((resolve) => {
    second.once('error', () => resolve(true))
    second.listen(port, b, () => resolve(false))
  })
  await new Promise<void>((resolve) => second.close(() => resolve()))
  await new Promise<void>((resolve) => first.close(() => resolve()))
  return failed
}

describe('listeners and admin endpoint that cannot all bind', () => {
  const pairs: Array<[string, string]> = [
    ['0.0.0.0', '127.0.0.1'], ['127.0.0.1', '0.0.0.0'], ['::', '0.0.0.0'], ['::', '127.0.0.1'], ['::', '::1'],
    ['0.0.0.0', '::1'], ['127.0.0.1', '127.0.0.2'], ['127.0.0.1', '::ffff:127.0.0.1'], ['::1', '0:0:0:0:0:0:0:1'],
  ]

  it.each(pairs)('%s and %s on one port: refused at load exactly when the second bind fails', async (a, b) => {
    const fails = await secondBindFails(a, b)
    const found = issues([...listeners(`${a}:18830`, `${b}:18830`), 'upstream: { host: 192.0.2.1, port: 1883 }'])
    expect(found.length > 0, JSON.stringify(found)).toBe(fails)
    if (fails) expect(found).toEqual([{ path: 'listeners.1.port', line: 3, message: expect.stringMatching(/overlaps listener 'l0' on .*18830: only one of them can bind it/) }])
  })

  it('an admin port on a listener\'s address: admin.port, with the listener named', () => {
    expect(issues([...listeners('0.0.0.0:1883'), 'upstream: { host: broker, port: 1883 }', 'admin: { host: 127.0.0.1, port: 1883 }'])).toEqual([
      { path: 'admin.port', line: 4, message: "127.0.0.1:1883 overlaps listener 'l0' on 0.0.0.0:1883: only one of them can bind it" },
    ])
    expect(issues([...listeners('10.0.0.1:1883'), 'upstream: { host: broker, port: 1883 }', 'admin: { host: 127.0.0.1, port: 1883 }'])).toEqual([])
  })

  it('port 0 (a free port each) never collides', () => {
    expect(issues([...listeners('127.0.0.1:0', '127.0.0.1:0'), 'upstream: { host: 127.0.0.1, port: 1883 }', 'admin: { host: 127.0.0.1, port: 0 }'])).toEqual([])
  })
})

describe('a listener on the broker\'s own address', () => {
  it('is refused when the broker is on this host: a loopback upstream, or the very address the listener binds', () => {
    for (const [bind, upstream] of [['0.0.0.0:1883', '127.0.0.1'], ['::', 'localhost'], ['127.0.0.1:1883', '127.0.0.1'], ['10.0.0.5:1883', '10.0.0.5']]) {
      const lines = bind === '::' ? listeners(':::1883') : listeners(bind!)
      expect(issues([...lines, `upstream: { host: ${upstream}, port: 1883 }`]), `${bind} → ${upstream}`).toEqual([
        { path: 'listeners.0.port', line: 2, message: expect.stringMatching(/is the broker's own address \(upstream .*:1883\): Moat cannot listen where the broker does, nor proxy to itself/) },
      ])
    }
  })

  it('is accepted where the broker may be elsewhere (a remote address, a host name, localhost on the other IP version), or on another port', () => {
    expect(issues([...listeners('127.0.0.1:1883'), 'upstream: { host: localhost, port: 1883 }'])).toEqual([])
    expect(issues([...listeners('0.0.0.0:1883'), 'upstream: { host: 10.0.0.5, port: 1883 }'])).toEqual([])
    expect(issues([...listeners('0.0.0.0:1883'), 'upstream: { host: mosquitto, port: 1883 }'])).toEqual([])
    expect(issues([...listeners('0.0.0.0:1883'), 'upstream: { host: 127.0.0.1, port: 1884 }'])).toEqual([])
  })

  it('an admin endpoint on the broker\'s address is refused too', () => {
    expect(issues([...listeners('0.0.0.0:8883'), 'upstream: { host: 127.0.0.1, port: 1883 }', 'admin: { host: 127.0.0.1, port: 1883 }'])).toEqual([
      { path: 'admin.port', line: 4, message: "127.0.0.1:1883 is the broker's own address (upstream 127.0.0.1:1883): the admin endpoint cannot bind where the broker listens" },
    ])
  })
})
