/**
 * A Moat started as an operator starts it (node dist/cli.js --config FILE, dist built by
 * test/global-setup.ts) with `log.file`: what it logs is read from that file, in either format,
 * the way a log shipper, fail2ban or logrotate meets it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cliPath } from './moat-process.js'

/** The file's complete lines (a line still being written is left out). */
export function fileLines(file: string): string[] {
  if (!existsSync(file)) return []
  const lines = readFileSync(file, 'utf8').split('\n')
  lines.pop()
  return lines
}

/** The file's lines parsed as JSON (log.format: json). */
export function jsonLines(file: string): Array<Record<string, unknown>> {
  return fileLines(file).map((l) => JSON.parse(l) as Record<string, unknown>)
}

export class LoggingMoat {
  /** What Moat wrote to standard output and error (nothing, while the log goes to the file). */
  output = ''
  port = 0
  private readonly exited: Promise<void>

  private constructor(readonly child: ChildProcess, readonly file: string) {
    child.stdout!.on('data', (d: Buffer) => { this.output += d })
    child.stderr!.on('data', (d: Buffer) => { this.output += d })
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()))
  }

  /**
   * Writes `config` (JSON is YAML) to DIR/moat.yaml with `log` (`file` default DIR/moat.log), runs
   * moat, and resolves once the log file says it is ready (with `workers`: the primary's line).
   */
  static async start(dir: string, config: Record<string, unknown>, log: Record<string, unknown> = {}, options: { env?: NodeJS.ProcessEnv; workers?: number } = {}): Promise<LoggingMoat> {
    const file = typeof log.file === 'string' ? log.file : join(dir, 'moat.log')
    writeFileSync(join(dir, 'moat.yaml'), JSON.stringify({ ...config, log: { ...log, file } }, null, 2))
    const child = spawn(process.execPath, [cliPath, '--config', join(dir, 'moat.yaml')], { env: options.env ?? process.env })
    const moat = new LoggingMoat(child, file)
    const ready = options.workers === undefined ? /"event":"ready"/ : new RegExp(`"event":"ready","workers":${options.workers}`)
    await moat.waitForLine(ready, 15_000)
    const listening = await moat.waitForLine(/"event":"listening".*?"port":(\d+)/)
    moat.port = Number(/"port":(\d+)/.exec(listening)![1])
    return moat
  }

  get pid(): number {
    return this.child.pid!
  }

  /** The first line of `file` (default the log file) matching `re`. */
  async waitForLine(re: RegExp, timeoutMs = 10_000, file = this.file): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = fileLines(file).find((l) => re.test(l))
      if (line !== undefined) return line
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`moat exited; its output:\n${this.output}\n${file}:\n${fileLines(file).join('\n')}`)
      if (Date.now() > deadline) throw new Error(`no line matching ${re} in ${file}:\n${fileLines(file).join('\n')}\noutput:\n${this.output}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal)
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    await this.exited
  }
}
