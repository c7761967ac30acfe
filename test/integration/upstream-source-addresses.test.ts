/**
 * `upstream.sourceAddresses`: Moat's connections to the broker come from the listed local addresses
 * in turn (what lets one host hold more connections to one broker port than one address has
 * ephemeral ports); a bad address is a config error naming the key.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { configFromObject } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'
import type { Moat } from '../../src/moat.js'
import { startAedes, type AedesBroker } from '../helpers/aedes.js'
import { connect, uid } from '../helpers/clients.js'
import { startMoat } from '../helpers/moat.js'

let broker: AedesBroker | null = null
let moat: Moat | null = null
afterEach(async () => {
  await moat?.shutdown(0)
  await broker?.stop()
  moat = null
  broker = null
})

function configIssue(upstream: Record<string, unknown>): string {
  try {
    configFromObject({ listeners: [{ name: 'm', protocol: 'mqtt', port: 0 }], upstream }, 'moat.yaml')
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).message
  }
  throw new Error('the config loaded, but it should not')
}

describe('upstream.sourceAddresses', () => {
  it('dials the broker from each listed address in turn', async () => {
    broker = await startAedes()
    const seen: string[] = []
    broker.broker.on('client', (client) => {
      seen.push((client as unknown as { conn: { remoteAddress: string } }).conn.remoteAddress)
    })
    moat = await startMoat(broker, { upstream: { sourceAddresses: ['127.0.0.2', '127.0.0.3'] } })
    const port = moat.address().port
    const clients = []
    for (let i = 0; i < 4; i++) clients.push(await connect(port, { clientId: uid('src') }))
    await expect.poll(() => seen.length).toBe(4)
    expect(seen.sort()).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3'])
    for (const c of clients) await c.endAsync()
  })

  it('is absent from the compiled config when not set', () => {
    const config = configFromObject({ listeners: [{ name: 'm', protocol: 'mqtt', port: 0 }], upstream: { host: '127.0.0.1', port: 1883 } })
    expect(config.upstream.sourceAddresses).toBeUndefined()
  })

  it('refuses what is not an IP address, and an address of the other IP version than host', () => {
    expect(configIssue({ host: '127.0.0.1', port: 1883, sourceAddresses: ['localhost'] })).toMatch(/moat\.yaml.*upstream\.sourceAddresses\.0.*IP address/s)
    expect(configIssue({ host: '127.0.0.1', port: 1883, sourceAddresses: ['::1'] })).toMatch(/upstream\.sourceAddresses\.0.*same IP version/s)
  })
})
