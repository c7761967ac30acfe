/**
 * Reloading the config file, on SIGHUP or when it changes, the same way for a single process
 * (moat.ts) and for a cluster's primary (workers/primary.ts).
 *
 * The file is watched by polling its modification time and size (robust to editors that replace
 * the file and to config-management tools). A change is acted on only once the file has settled: the same size and modification time
 * `settleMs` after the change was seen. A tool that rewrites the file in place can otherwise be
 * caught half-way, and half a policy may still be valid (a file cut off before its `acl` section
 * allows every topic).
 *
 * One edit is usually seen twice: the operator's SIGHUP and the watcher's poll. A reload whose
 * inputs (the compiled config and the bytes of every file it names) are those of the running policy
 * does nothing, and a refusal of the same text for the same reason is reported once.
 */
import { createHash } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { ConfigError } from '../errors.js'
import type { Logger } from '../log/logger.js'
import { parseConfig } from '../config/load.js'
import type { MoatConfig } from '../config/types.js'

export const SETTLE_MS = 300

/** What the watcher compares: a file's modification time and size. */
export interface FileStamp {
  readonly mtimeMs: number
  readonly size: number
}

/** `file`'s stamp now; null when it cannot be read. */
export function fileStamp(file: string): FileStamp | null {
  try {
    const { mtimeMs, size } = statSync(file)
    return { mtimeMs, size }
  } catch {
    return null
  }
}

export class ConfigWatcher {
  private readonly file: string
  private readonly onSettled: () => void
  private timer: NodeJS.Timeout | null = null
  private poll: NodeJS.Timeout | null = null
  /** The stamp the file had when last looked at (a change is a stamp other than this one). */
  private last: FileStamp | null = null

  constructor(file: string, onSettled: () => void) {
    this.file = file
    this.onSettled = onSettled
  }

  /**
   * Polls the file every `intervalMs` (one stat on the main thread) against the stamp it had when
   * the running config was read from it (`loaded`), so that an edit made between the load and
   * the start of the watch (right after Moat said it was ready) is seen like any other.
   */
  start(intervalMs = 1000, settleMs = SETTLE_MS, loaded: FileStamp | null = null): void {
    if (this.poll !== null) return
    this.last = loaded ?? fileStamp(this.file)
    this.poll = setInterval(() => this.look(settleMs), intervalMs)
    this.poll.unref()
    this.look(settleMs)
  }

  stop(): void {
    if (this.poll === null) return
    clearInterval(this.poll)
    this.poll = null
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private look(settleMs: number): void {
    const now = fileStamp(this.file)
    if (now === null) return // gone for now (being replaced): a later look sees it back
    const last = this.last
    if (last !== null && now.mtimeMs === last.mtimeMs && now.size === last.size) return
    this.last = now
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = setTimeout(() => this.settle(now), settleMs)
    this.timer.unref()
  }

  private settle(seen: FileStamp): void {
    this.timer = null
    const now = fileStamp(this.file)
    // Gone, or still being written: a later look sees the next stamp and waits again.
    if (now === null || now.mtimeMs !== seen.mtimeMs || now.size !== seen.size) return
    this.onSettled()
  }
}

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed'

/** What a reload acts on: the single process's Moat, or the cluster primary. */
export interface ReloadTarget {
  /** Compiles `next` and makes it the running policy; throws, the running policy untouched, when it cannot be compiled. */
  apply(next: MoatConfig, text: string): void
  /** Counts a refused reload. */
  countFailure(): void
}

export class ConfigReloader {
  readonly file: string
  private readonly logger: Logger
  private readonly target: ReloadTarget
  /** The failure line's message (what keeps running). */
  private readonly keeping: string
  /** inputsFingerprint() of the running policy; null until the first reload, which always applies. */
  private running: string | null = null
  /** The text and error of the last refusal, so the same refusal seen again is not reported twice. */
  private refused: string | null = null
  private watcher: ConfigWatcher | null = null
  /** The file's stamp when the running config was read (see ConfigWatcher.start). */
  private readonly loaded: FileStamp | null

  /** `loaded`: the file's stamp when the running config was read from it (default: now). */
  constructor(file: string, logger: Logger, target: ReloadTarget, keeping: string, loaded: FileStamp | null = fileStamp(file)) {
    this.file = file
    this.logger = logger
    this.target = target
    this.keeping = keeping
    this.loaded = loaded
  }

  /** `watched`: the file watcher asks (the file changed), not an operator (SIGHUP). */
  reload(watched = false): ReloadOutcome {
    const file = this.file
    let text = ''
    let next: MoatConfig
    let fingerprint: string
    try {
      text = readConfigText(file)
      next = parseConfig(text, file)
      fingerprint = inputsFingerprint(next)
    } catch (err) {
      return this.refuse(text, err)
    }
    if (fingerprint === this.running) {
      this.logger.debug({ event: 'config_reload', outcome: 'unchanged', file, trigger: watched ? 'watch' : 'signal' }, 'reload: the config and the files it names are those running: nothing to do')
      return 'unchanged'
    }
    if (watched) this.logger.info({ event: 'config_changed', file }, 'config file changed: reloading')
    try {
      this.target.apply(next, text)
    } catch (err) {
      return this.refuse(text, err)
    }
    this.running = fingerprint
    this.refused = null
    return 'reloaded'
  }

  /** Reloads when the config file changes (polled every `intervalMs`); `onReloaded` after each reload that applied. */
  watch(onReloaded?: () => void, intervalMs = 1000): void {
    if (this.watcher !== null) return
    this.watcher = new ConfigWatcher(this.file, () => {
      if (this.reload(true) === 'reloaded') onReloaded?.()
    })
    this.watcher.start(intervalMs, SETTLE_MS, this.loaded)
  }

  stop(): void {
    this.watcher?.stop()
  }

  private refuse(text: string, err: unknown): ReloadOutcome {
    const error = (err as Error).message
    const refusal = createHash('sha256').update(text).update('\0').update(error).digest('hex')
    if (refusal === this.refused) {
      this.logger.debug({ event: 'config_reload', outcome: 'failure', file: this.file, error }, 'reload refused again, same file, same reason (reported already)')
      return 'failed'
    }
    this.refused = refusal
    this.target.countFailure()
    this.logger.warn({ event: 'config_reload', outcome: 'failure', file: this.file, error }, this.keeping)
    return 'failed'
  }
}

/**
 * What a policy is built from: the compiled config (comments and key order do not count) and the
 * bytes of every file it names, read now. Any absolute path in the config naming a regular file
 * counts (password files, certificates, keys, CRLs, the config file itself), so a file setting
 * added later is covered without being listed here; a topic that happens to be a path costs a stat.
 */
export function inputsFingerprint(config: MoatConfig): string {
  const hash = createHash('sha256').update(JSON.stringify(config))
  const files = new Set<string>()
  namedFiles(config, files)
  for (const path of [...files].sort()) {
    hash.update(`\0${path}\0`)
    try {
      hash.update(readFileSync(path))
    } catch (err) {
      hash.update(`unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  return hash.digest('hex')
}

/** As loadConfig() reads it: an unreadable file is a ConfigError saying why. */
function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new ConfigError('MOAT_ERR_CONFIG_READ', [{ file, path: '', message: `cannot read the config: ${reason}` }])
  }
}

function namedFiles(value: unknown, out: Set<string>): void {
  if (typeof value === 'string') {
    if (value.length > 1 && isAbsolute(value) && !out.has(value) && isFile(value)) out.add(value)
  } else if (Array.isArray(value)) {
    for (const item of value) namedFiles(item, out)
  } else if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) namedFiles(item, out)
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isFile() === true
  } catch {
    return false // not a usable path (a NUL byte, too long)
  }
}
