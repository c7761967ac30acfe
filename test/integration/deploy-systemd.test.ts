/**
 * deploy/systemd/moat.service and deploy/logrotate/moat are checked by the programs that read
 * them: systemd-analyze verify (Debian's systemd) on the unit, and a real logrotate run rotating
 * the log file of a running Moat with the example's own settings.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { describe, expect, it } from 'vitest'
import { startAedes } from '../helpers/aedes.js'
import { cliPath } from '../helpers/moat-process.js'
import { jsonLines, LoggingMoat } from '../helpers/moat-log-file.js'
import { programPath } from '../helpers/programs.js'
import { scratchDirs } from '../helpers/scratch.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const unit = readFileSync(join(root, 'deploy/systemd/moat.service'), 'utf8')
const rotation = readFileSync(join(root, 'deploy/logrotate/moat'), 'utf8')
const systemdAnalyze = programPath('systemd-analyze', 'systemd')
const logrotate = programPath('logrotate', 'logrotate')

const scratch = scratchDirs('moat-systemd-')

/** The unit's settings, `Key=value` lines in order (a key may repeat). */
function settings(text: string): string[] {
  return text.split('\n').filter((l) => /^[A-Za-z]+=/.test(l))
}

describe('deploy/systemd/moat.service', () => {
  it('runs Moat from /opt/moat as its own user, reloads on SIGHUP, logs under /var/log/moat, and is hardened', () => {
    const set = settings(unit)
    expect(set).toEqual(expect.arrayContaining([
      'Type=exec', 'User=moat', 'Group=moat',
      'ExecStart=/usr/bin/node --no-memory-reducer --max-semi-space-size=4 /opt/moat/dist/cli.js --config /etc/moat/moat.yaml',
      'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'LogsDirectory=moat',
      'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'AmbientCapabilities=CAP_NET_BIND_SERVICE',
    ]))
    expect(Number(set.find((l) => l.startsWith('LimitNOFILE='))!.slice('LimitNOFILE='.length))).toBeGreaterThanOrEqual(65_536)
    // V8 writes machine code at run time: node aborts under it.
    expect(set.filter((l) => l.startsWith('MemoryDenyWriteExecute='))).toEqual([])
  })

  it.skipIf(systemdAnalyze === null)('passes systemd-analyze verify without a warning', () => {
    // verify refuses a unit whose ExecStart program does not exist: the copy runs the node running
    // these tests and this checkout's dist/cli.js instead of /usr/bin/node and /opt/moat. Nothing
    // else of the unit changes.
    const dir = scratch()
    const copy = unit.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `).replace('/opt/moat/dist/cli.js', cliPath)
    expect(settings(copy).filter((l) => !settings(unit).includes(l))).toEqual([`ExecStart=${process.execPath} --no-memory-reducer --max-semi-space-size=4 ${cliPath} --config /etc/moat/moat.yaml`])
    writeFileSync(join(dir, 'moat.service'), copy)
    const result = spawnSync(systemdAnalyze!, ['verify', join(dir, 'moat.service')], { encoding: 'utf8' })
    expect({ status: result.status, output: result.stdout + result.stderr }).toEqual({ status: 0, output: '' })
  })
})

describe('deploy/logrotate/moat', () => {
  it.skipIf(logrotate === null)('is read by logrotate as shipped', () => {
    const dir = scratch()
    const result = spawnSync(logrotate!, ['--debug', '--state', join(dir, 'state'), join(root, 'deploy/logrotate/moat')], { encoding: 'utf8' })
    expect(result.status, result.stderr).toBe(0)
    expect(result.stderr).toMatch(/rotating pattern: \/var\/log\/moat\/\*\.log/)
  })

  it.skipIf(logrotate === null)('rotates a running Moat\'s log: the moved file keeps the old lines, Moat writes the new ones to a fresh file', async () => {
    const broker = await startAedes()
    const dir = scratch()
    const moat = await LoggingMoat.start(dir, {
      listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
      upstream: { host: broker.host, port: broker.port },
      auth: { anonymous: true },
      acl: [{ allow: 'all', topic: '#' }],
    })
    const session = async (clientId: string): Promise<void> => {
      await (await mqtt.connectAsync(`mqtt://127.0.0.1:${moat.port}`, { clientId, reconnectPeriod: 0 })).endAsync()
      await expect.poll(() => jsonLines(moat.file).some((l) => l.event === 'session_end' && l.clientId === clientId), { timeout: 5000 }).toBe(true)
    }
    try {
      // The example as shipped, but for this directory, and with kill instead of systemctl (no systemd here).
      const signal = '        systemctl kill --signal=USR2 moat.service >/dev/null 2>&1 || true'
      expect(rotation).toContain(signal)
      const config = join(dir, 'logrotate.conf')
      expect(rotation).toContain('\n/var/log/moat/*.log {\n')
      writeFileSync(config, rotation.replace('\n/var/log/moat/*.log {\n', `\n${dir}/*.log {\n`).replace(signal, `        kill -USR2 ${moat.pid}`), { mode: 0o644 })
      const rotate = (): void => {
        const result = spawnSync(logrotate!, ['--force', '--state', join(dir, 'state'), config], { encoding: 'utf8' })
        expect(result.status, result.stderr).toBe(0)
      }
      await session('first')
      rotate()
      await moat.waitForLine(/"event":"log_reopened","cause":"SIGUSR2"/)
      await session('second')
      const clients = (file: string): unknown[] => jsonLines(file).filter((l) => l.event === 'session_open').map((l) => l.clientId)
      expect(clients(`${moat.file}.1`)).toEqual(['first'])
      expect(clients(moat.file)).toEqual(['second'])
      // delaycompress: the file moved last is left as it is, for lines written before the reopen.
      rotate()
      await moat.waitForLine(/"event":"log_reopened","cause":"SIGUSR2"/)
      expect(readdirSync(dir).filter((f) => f.startsWith('moat.log')).sort()).toEqual(['moat.log', 'moat.log.1', 'moat.log.2.gz'])
      expect(clients(`${moat.file}.1`)).toEqual(['second'])
      expect(existsSync(moat.file)).toBe(true)
    } finally {
      await moat.stop()
      await broker.stop()
    }
  }, 30_000)
})
