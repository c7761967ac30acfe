/**
 * Where the log lines go, written the moment they are logged and without libuv's thread pool.
 * pino's own destination hands each line to the thread pool when it is idle, which wakes a thread
 * per line; at a line or two per connection that was a fifth of a CONNECT's cost (bench/README.md).
 * Written at once, a line is in the file (or the pipe) when the call that logged it returns, in
 * the same turn of the event loop as what it records, not some time later from another thread.
 *
 * - `log.file`: one write(2) per line on a descriptor opened for appending. A regular file takes
 *   it into the page cache; nothing waits for the disk.
 * - Standard output on a pipe or a socket (the journal under systemd, a container runtime, a log
 *   shipper): Node's own non-blocking stream for it, which writes at once and keeps what the reader
 *   has not taken yet. A reader that stops must not grow the proxy without bound: past
 *   MAX_BACKLOG_BYTES lines are dropped and counted, and one line says how many once the reader
 *   has caught up.
 * - Standard output on a terminal or a file: Node writes those synchronously.
 */
import { closeSync, openSync, writeSync } from 'node:fs'

/** Bytes of log lines kept for a standard output whose reader lags, before lines are dropped. */
export const MAX_BACKLOG_BYTES = 16 * 1024 * 1024

/** How long flush() waits for a lagging reader (at exit) before giving up on the rest. */
const FLUSH_WAIT_MS = 2000

export interface LogSink {
  /** Writes one line (or any text) after everything written before it. */
  write(text: string): boolean
  /** Calls `done` once what was written has left the process (or after FLUSH_WAIT_MS). */
  flush(done: (err?: Error) => void): void
  /** Opens the file again at its path (logrotate moved it); false for standard output. */
  reopen(): boolean
}

/**
 * `path`, opened for appending now (throws when it cannot be: the caller makes that a config
 * error). A write that fails (a full disk) loses that line and is reported on stderr, once per
 * error code until a write succeeds again; a reopen that fails keeps the descriptor in use.
 */
export function fileSink(path: string): LogSink {
  let fd = openSync(path, 'a')
  let failing: string | null = null
  return {
    write(text: string): boolean {
      try {
        // A regular file takes a whole line; only a full disk writes part of one.
        const written = writeSync(fd, text)
        if (written < Buffer.byteLength(text)) writeRest(fd, Buffer.from(text), written)
        failing = null
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error'
        if (failing !== code) process.stderr.write(`moat: log file ${path}: ${(err as Error).message} (lines are lost until a write succeeds)\n`)
        failing = code
      }
      return true
    },
    flush(done: (err?: Error) => void): void {
      done()
    },
    reopen(): boolean {
      try {
        const fresh = openSync(path, 'a')
        closeSync(fd)
        fd = fresh
      } catch (err) {
        process.stderr.write(`moat: log file ${path}: ${(err as Error).message} (after a failed reopen, lines go on to the file open before)\n`)
      }
      return true
    },
  }
}

function writeRest(fd: number, bytes: Buffer, from: number): void {
  for (let done = from; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done)
}

/**
 * Standard output (see above). `render` turns the count line into the log's format (pretty);
 * `stdout` is process.stdout, or a stream standing for it in tests.
 */
export function stdoutSink(render: (line: string) => string = same, stdout: NodeJS.WritableStream & { readonly writableLength: number } = process.stdout): LogSink {
  let dropped = 0
  return {
    write(text: string): boolean {
      if (stdout.writableLength > MAX_BACKLOG_BYTES) {
        dropped++
        return false
      }
      if (dropped > 0) {
        stdout.write(render(droppedLine(dropped)))
        dropped = 0
      }
      return stdout.write(text)
    },
    flush(done: (err?: Error) => void): void {
      if (stdout.writableLength === 0) return done()
      const timer = setTimeout(finish, FLUSH_WAIT_MS)
      stdout.once('drain', finish)
      function finish(): void {
        clearTimeout(timer)
        stdout.off('drain', finish)
        done()
      }
    },
    reopen(): boolean {
      return false
    },
  }
}

function same(line: string): string {
  return line
}

/** The line that stands for the lines a lagging reader cost (the same shape as the logger's). */
function droppedLine(count: number): string {
  const line = { level: 'warn', time: new Date().toISOString(), service: 'moat', event: 'log_lines_dropped', dropped: count, msg: 'standard output was not read fast enough: log lines dropped' }
  return JSON.stringify(line) + '\n'
}
