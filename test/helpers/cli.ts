/**
 * The `moat` command as a user runs it: `node dist/cli.js …` (built by test/global-setup.ts), once
 * to completion, or left running until its output shows it is ready.
 */
import { spawn, type ChildProcess, type SpawnOptionsWithoutStdio } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const cli = join(root, 'dist/cli.js')

/** A temporary directory for a test file's configs. */
export class ConfigDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'moat-cli-'))

  /** Writes `text` (lines are joined, and end with a newline) to DIR/NAME; returns its path. */
  write(name: string, text: string | readonly string[]): string {
    const file = join(this.dir, name)
    writeFileSync(file, typeof text === 'string' ? text : text.join('\n') + '\n')
    return file
  }
}

export interface Run { code: number | null; signal: string | null; stdout: string; stderr: string }

export interface RunOptions {
  /** Written to its standard input, which is then closed. */
  readonly stdin?: string
  /** Its environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv
  /** Run as this user and group (the tests must run as root for that). */
  readonly uid?: number
  readonly gid?: number
}

function spawnOptions(options: RunOptions): SpawnOptionsWithoutStdio {
  return { cwd: root, env: options.env ?? process.env, ...(options.uid === undefined ? {} : { uid: options.uid }), ...(options.gid === undefined ? {} : { gid: options.gid }) }
}

export function runCli(args: string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], spawnOptions(options))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d })
    child.stderr.on('data', (d: Buffer) => { stderr += d })
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(options.stdin ?? '')
  })
}

export interface Started { child: ChildProcess; output: () => string; match: RegExpMatchArray }

/** Starts a long-running moat and resolves once `ready` matches its output (stdout and stderr). */
export function startCli(args: string[], ready: RegExp, options: RunOptions = {}): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], spawnOptions(options))
    let output = ''
    let done = false
    const onData = (d: Buffer): void => {
      output += d
      const match = output.match(ready)
      if (match && !done) {
        done = true
        resolve({ child, output: () => output, match })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('close', (code) => {
      if (!done) reject(new Error(`moat exited (${code}) before it was ready:\n${output}`))
    })
  })
}
