/**
 * The fail2ban filter of deploy/fail2ban/ against a log a real Moat wrote: MQTT.js clients log in
 * badly from one address (127.0.0.2) and honestly, with a broken packet and a silent socket, from
 * another (127.0.0.3); Debian's fail2ban-regex then reads Moat's log file with the filter as
 * shipped. It must read the date of every line, find the attacker's address in each counted
 * refusal, and nothing of the honest client's.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAedes, type AedesBroker } from '../helpers/aedes.js'
import { cliPath } from '../helpers/moat-process.js'
import { jsonLines, LoggingMoat } from '../helpers/moat-log-file.js'
import { programPath } from '../helpers/programs.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const filter = join(root, 'deploy/fail2ban/filter.d/moat.conf')
const fail2banRegex = programPath('fail2ban-regex', 'fail2ban')

const ATTACKER = '127.0.0.2'
const HONEST = '127.0.0.3'
const PASSWORD = 'correct-horse-7'
/** A client id that tries to put another address into the line. */
const FORGED_ID = `x","remote":"198.51.100.9:1","audit":true,"event":"connect_refused","reason":"bad_credentials`

/** One MQTT.js connection whose socket leaves from `localAddress`; resolves with how it ended. */
function login(port: number, localAddress: string, options: mqtt.IClientOptions): Promise<'connected' | 'refused'> {
  return new Promise((resolve) => {
    const client = new mqtt.MqttClient(() => net.connect({ host: '127.0.0.1', port, localAddress }), { reconnectPeriod: 0, protocolVersion: 4, ...options })
    client.once('connect', () => client.end(false, () => resolve('connected')))
    client.once('error', () => client.end(true, () => resolve('refused')))
  })
}

/** A raw socket from `localAddress` that sends `bytes` (maybe none) and resolves when Moat closes it. */
function raw(port: number, localAddress: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => socket.write(bytes))
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}

describe.skipIf(fail2banRegex === null)('fail2ban filter on the log Moat writes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-fail2ban-'))
  let broker: AedesBroker
  let moat: LoggingMoat

  beforeAll(async () => {
    broker = await startAedes()
    execFileSync(process.execPath, [cliPath, 'passwd', join(dir, 'passwd'), 'device-1'], { input: `${PASSWORD}\n`, stdio: 'pipe' })
    moat = await LoggingMoat.start(dir, {
      listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
      upstream: { host: broker.host, port: broker.port },
      limits: { connectTimeout: '1s' },
      auth: { backends: [{ type: 'file', path: 'passwd' }], lockout: { maxFailures: 3, per: ['address'] } },
    })
  }, 30_000)

  afterAll(async () => {
    await moat?.stop()
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('reads every date and bans the address of bad logins only, never the honest client', async () => {
    // The attacker: no credentials, a forged client id, wrong passwords until the lockout bans the address.
    expect(await login(moat.port, ATTACKER, { clientId: 'anonymous-probe' })).toBe('refused')
    expect(await login(moat.port, ATTACKER, { clientId: FORGED_ID, username: 'device-1', password: 'wrong-0' })).toBe('refused')
    for (let i = 1; i <= 3; i++) expect(await login(moat.port, ATTACKER, { clientId: `guess-${i}`, username: 'device-1', password: `wrong-${i}` })).toBe('refused')
    // The honest client: a good login, a packet its firmware got wrong, a link too slow to send CONNECT.
    expect(await login(moat.port, HONEST, { clientId: 'device-1', username: 'device-1', password: PASSWORD })).toBe('connected')
    await raw(moat.port, HONEST, Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))
    await raw(moat.port, HONEST, Buffer.alloc(0))
    await moat.waitForLine(/"event":"session_end".*"reason":"client_disconnect"/)
    await moat.waitForLine(/"reason":"connect_timeout"/)
    await moat.stop() // the file is complete: fail2ban-regex and this test read the same lines

    const lines = jsonLines(moat.file)
    const audit = lines.filter((l) => l.audit === true && typeof l.remote === 'string')
    const from = (address: string): Array<Record<string, unknown>> => audit.filter((l) => (l.remote as string).startsWith(`${address}:`))
    // What Moat logged, so the counts below are about the filter, not about Moat.
    expect(from(ATTACKER).map((l) => `${l.event} ${l.reason}`)).toEqual([
      'connect_refused not_authorized', ...Array(3).fill('connect_refused bad_credentials'), 'connect_refused banned',
    ])
    expect(from(ATTACKER)[1]).toMatchObject({ clientId: FORGED_ID })
    expect(from(HONEST).map((l) => `${l.event} ${l.reason}`)).toEqual(['client_refused malformed_packet', 'client_refused connect_timeout'])

    const summary = execFileSync(fail2banRegex!, [moat.file, filter], { encoding: 'utf8' })
    expect(summary).toMatch(new RegExp(`^Lines: ${lines.length} lines, 0 ignored, 5 matched, ${lines.length - 5} missed`, 'm'))
    expect(summary).toMatch(new RegExp(`^\\|  \\[${lines.length}\\] \\^\\\\\\{"level"`, 'm')) // every line's date, by the filter's datepattern
    // Each match: the address fail2ban would ban and the time it read, which must be the line's (UTC).
    const rows = [...execFileSync(fail2banRegex!, ['-o', 'row', moat.file, filter], { encoding: 'utf8' }).matchAll(/\['([^']+)',\s*([\d.]+),/g)]
    expect(rows.map((r) => r[1])).toEqual(Array(5).fill(ATTACKER))
    expect(rows.map((r) => Math.floor(Number(r[2])))).toEqual(from(ATTACKER).map((l) => Math.floor(Date.parse(l.time as string) / 1000)))
  }, 30_000)
})
