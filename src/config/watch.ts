/**
 * Watching the config file for changes (polled: robust to editors that replace the file and to
 * config-management tools). A change is acted on only once the file has settled: the same size and
 * modification time `settleMs` after the change was seen. A tool that rewrites the file in place
 * can otherwise be caught half-way, and half a policy may still be valid (a file cut off before its
 * `acl` section allows every topic).
 */
import { statSync, unwatchFile, watchFile, type Stats } from 'node:fs'

export const SETTLE_MS = 300

export class ConfigWatcher {
  private readonly file: string
  private readonly onSettled: () => void
  private timer: NodeJS.Timeout | null = null
  private watching = false

  constructor(file: string, onSettled: () => void) {
    this.file = file
    this.onSettled = onSettled
  }

  start(intervalMs = 1000, settleMs = SETTLE_MS): void {
    if (this.watching) return
    this.watching = true
    watchFile(this.file, { interval: intervalMs, persistent: false }, (current, previous) => {
      if (current.mtimeMs === previous.mtimeMs && current.size === previous.size) return
      if (this.timer !== null) clearTimeout(this.timer)
      this.timer = setTimeout(() => this.settle(current), settleMs)
      this.timer.unref()
    })
  }

  stop(): void {
    if (!this.watching) return
    this.watching = false
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    unwatchFile(this.file)
  }

  private settle(seen: Stats): void {
    this.timer = null
    let now: Stats
    try {
      now = statSync(this.file)
    } catch {
      return // gone for now (being replaced): the watcher fires again when it is back
    }
    // Still being written: the watcher sees the next change and waits again.
    if (now.mtimeMs !== seen.mtimeMs || now.size !== seen.size) return
    this.onSettled()
  }
}
