/**
 * Logs and user signals of the real `moat` command (node dist/cli.js): the log file reopened on
 * SIGUSR2 and SIGHUP after a rename, as logrotate does it, by one process and by every worker;
 * both formats from a running proxy, with a client's password in neither; and SIGUSR1, which
 * opens Node's inspector in a process that does not catch it, opening nothing in Moat.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startAedes, type AedesBroker } from '../helpers/aedes.js'
import { fileLines, jsonLines, LoggingMoat } from '../helpers/moat-log-file.js'
import { cliPath, MoatProcess } from '../helpers/moat-process.js'
import { freePort } from '../helpers/mosquitto.js'
import { scratchDirs } from '../helpers/scratch.js'

let broker: AedesBroker
const scratch = scratchDirs('moat-logs-')
const running: Array<{ stop(): Promise<void> }> = []

beforeAll(async () => {
  broker = await startAedes()
})
afterEach(async () => {
  for (const moat of running.splice(0)) await moat.stop()
})
afterAll(async () => {
  await broker?.stop()
})

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 0 }],
    upstream: { host: broker.host, port: broker.port },
    auth: { anonymous: true },
    acl: [{ allow: 'all', topic: '#' }],
    ...extra,
  }
}

async function start(log: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, options: { workers?: number; env?: NodeJS.ProcessEnv } = {}): Promise<LoggingMoat> {
  const moat = await LoggingMoat.start(scratch(), config(extra), log, options)
  running.push(moat)
  return moat
}

/** A client that connects and disconnects: one session_open and one session_end line. */
async function session(port: number, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 })
  await client.endAsync()
}

const sessionsIn = (file: string): unknown[] => jsonLines(file).filter((l) => l.event === 'session_open').map((l) => l.clientId)

describe('log.file and SIGUSR2 / SIGHUP', () => {
  it('after a rename, SIGUSR2 sends new lines to a fresh file; the renamed one keeps the old lines; SIGHUP does the same', async () => {
    const moat = await start()
    await session(moat.port, 'before-rotation')
    await moat.waitForLine(/"event":"session_end"/)
    renameSync(moat.file, `${moat.file}.1`)
    moat.signal('SIGUSR2')
    await moat.waitForLine(/"event":"log_reopened","cause":"SIGUSR2"/)
    await session(moat.port, 'after-sigusr2')
    await moat.waitForLine(/"event":"session_end"/)
    renameSync(moat.file, `${moat.file}.2`)
    moat.signal('SIGHUP')
    await moat.waitForLine(/"event":"log_reopened","cause":"SIGHUP"/)
    await session(moat.port, 'after-sighup')
    await moat.waitForLine(/"event":"session_end"/)

    expect(sessionsIn(`${moat.file}.1`)).toEqual(['before-rotation'])
    expect(jsonLines(`${moat.file}.1`).filter((l) => l.event === 'ready')).toHaveLength(1)
    expect(sessionsIn(`${moat.file}.2`)).toEqual(['after-sigusr2'])
    expect(jsonLines(`${moat.file}.2`)[0]).toMatchObject({ event: 'log_reopened', cause: 'SIGUSR2' })
    expect(sessionsIn(moat.file)).toEqual(['after-sighup'])
    expect(moat.output).toBe('')
  })

  it('a reload that changes log.format or log.file says they take effect on restart, and keeps the log as it was', async () => {
    const moat = await start()
    const yaml = join(moat.file, '..', 'moat.yaml')
    const running = JSON.parse(readFileSync(yaml, 'utf8')) as { log: Record<string, unknown> }
    writeFileSync(yaml, JSON.stringify({ ...running, log: { ...running.log, format: 'pretty', file: `${moat.file}.elsewhere` } }))
    moat.signal('SIGHUP')
    await moat.waitForLine(/"event":"config_reload".*log\.format and log\.file changes take effect on restart/)
    await moat.waitForLine(/"event":"config_reload","outcome":"success"/)
    await session(moat.port, 'after-reload')
    await moat.waitForLine(/^\{"level":"info",.*"event":"session_end"/)
    expect(existsSync(`${moat.file}.elsewhere`)).toBe(false)
  })

  it('with workers, every process appends to the one file, and SIGUSR2 to the primary alone reopens them all', async () => {
    const moat = await start({}, { workers: 2 }, { workers: 2 })
    // Each process writes its own lines: a worker's ready line may land after the primary's.
    const readyIn = (): unknown[] => jsonLines(moat.file).filter((l) => l.event === 'ready').map((l) => l.worker ?? 'primary').sort()
    await expect.poll(readyIn, { timeout: 10_000 }).toEqual([1, 2, 'primary'])
    renameSync(moat.file, `${moat.file}.1`)
    moat.signal('SIGUSR2')
    for (const who of ['"worker":1,', '"worker":2,', '"service":"moat",']) await moat.waitForLine(new RegExp(`${who}"event":"log_reopened"`))
    // Enough sessions for both workers to serve some: each writes to the fresh file.
    for (let i = 0; i < 12; i++) await session(moat.port, `after-${i}`)
    await expect.poll(() => jsonLines(moat.file).filter((l) => l.event === 'session_end').length, { timeout: 10_000 }).toBe(12)
    const fresh = jsonLines(moat.file)
    expect(new Set(fresh.filter((l) => l.event === 'session_end').map((l) => l.worker))).toEqual(new Set([1, 2]))
    expect(jsonLines(`${moat.file}.1`).filter((l) => l.event === 'session_open')).toEqual([])
    // Whole lines only, though three processes append at once.
    for (const line of fileLines(moat.file)) expect(() => JSON.parse(line) as unknown).not.toThrow()
  })

  it('a path it cannot reopen: Moat says so on stderr and goes on logging to the file it had', async () => {
    const dir = scratch()
    const logs = join(dir, 'logs')
    mkdirSync(logs)
    const moat = await LoggingMoat.start(dir, config(), { file: join(logs, 'moat.log') })
    running.push(moat)
    renameSync(logs, join(dir, 'moved'))
    moat.signal('SIGUSR2')
    await expect.poll(() => moat.output, { timeout: 5000 }).toMatch(/^moat: log file .*\/logs\/moat\.log: ENOENT: no such file or directory.*lines go on to the file open before\)\n$/)
    await session(moat.port, 'still-logged')
    await moat.waitForLine(/"clientId":"still-logged"/, 10_000, join(dir, 'moved', 'moat.log'))
  })
})

describe('log.format from the running proxy', () => {
  it.each(['json', 'pretty'] as const)('%s: one line per event, and the password a client sent is not in it', async (format) => {
    const dir = scratch()
    execFileSync(process.execPath, [cliPath, 'passwd', join(dir, 'passwd'), 'device-1'], { input: 'the-right-password\n', stdio: 'pipe' })
    const moat = await start({ format, level: 'debug' }, { auth: { backends: [{ type: 'file', path: join(dir, 'passwd') }] } })
    const refused = await mqtt.connectAsync(`mqtt://127.0.0.1:${moat.port}`, { clientId: 'device-1', username: 'device-1', password: 'hunter2-never-logged', reconnectPeriod: 0 }).catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(Error)
    await moat.waitForLine(/"event":"session_end"/)
    const lines = fileLines(moat.file)
    expect(lines.join('\n')).not.toContain('hunter2-never-logged')
    expect(lines.join('\n')).not.toContain('the-right-password')
    const refusal = lines.find((l) => l.includes('"event":"connect_refused"'))!
    if (format === 'json') {
      expect(JSON.parse(refusal)).toMatchObject({ level: 'warn', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/), reason: 'bad_credentials', username: 'device-1' })
    } else {
      expect(refusal).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}\] WARN: refusing client \{.*"reason":"bad_credentials"/)
      for (const line of lines) expect(line).toMatch(/^\[[^\]]+\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /)
    }
  })
})

describe('SIGUSR1', () => {
  /**
   * Whether Node's inspector answers on `port` (its /json/version names node.js). Not merely "does
   * a connect succeed": while the suite runs, another test may listen on the same free port, and a
   * connect to a free port of the ephemeral range may land on itself (the kernel picks that very
   * port as the source).
   */
  async function open(port: number): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/version`, { signal: AbortSignal.timeout(2000) })
      return /"Browser":\s*"node\.js/.test(await res.text())
    } catch {
      return false
    }
  }

  /** Node's inspector port for a process started with `env`: where SIGUSR1 would open it. */
  async function inspectorEnv(): Promise<{ port: number; env: NodeJS.ProcessEnv }> {
    const port = await freePort()
    return { port, env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect-port=127.0.0.1:${port}` } }
  }

  it('opens the inspector of a node process that does not catch it (what the tests below would see)', async () => {
    const { port, env } = await inspectorEnv()
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { env })
    await new Promise((resolve) => child.stdout.once('data', resolve))
    expect(await open(port)).toBe(false)
    child.kill('SIGUSR1')
    await expect.poll(() => open(port), { timeout: 5000 }).toBe(true)
    child.kill('SIGKILL')
  })

  it('opens no debugger in moat: the inspector port stays closed and Moat goes on serving', async () => {
    const { port, env } = await inspectorEnv()
    const moat = await MoatProcess.start(scratch(), 'moat.yaml', config(), { env })
    running.push(moat)
    moat.signal('SIGUSR1')
    await moat.waitForLog((l) => l.event === 'signal' && l.signal === 'SIGUSR1')
    // As long as the uncaught signal above took to open it, and more.
    for (let i = 0; i < 10; i++) {
      expect(await open(port)).toBe(false)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await session(moat.port, 'after-sigusr1')
    await moat.waitForLog((l) => l.event === 'session_end' && l.clientId === 'after-sigusr1')
    expect(moat.logs.some((l) => /Debugger listening/.test(String(l.text)))).toBe(false)
  })

  it('opens no debugger in any worker either', async () => {
    const { port, env } = await inspectorEnv()
    const moat = await start({}, { workers: 2 }, { workers: 2, env })
    const pids = jsonLines(moat.file).find((l) => l.event === 'ready' && l.workers === 2)!.pids as number[]
    for (const pid of [moat.pid, ...pids]) process.kill(pid, 'SIGUSR1')
    for (const who of ['"worker":1,', '"worker":2,', '"service":"moat",']) await moat.waitForLine(new RegExp(`${who}"event":"signal","signal":"SIGUSR1"`))
    for (let i = 0; i < 10; i++) {
      expect(await open(port)).toBe(false)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(moat.output).toBe('')
    await session(moat.port, 'after-sigusr1')
  })
})
