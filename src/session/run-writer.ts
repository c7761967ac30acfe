/**
 * Writes forwarded frames with as few system calls as possible: consecutive frames that lie next to
 * each other in the same chunk are written as one slice of that chunk (kafka-proxy's copy-through,
 * applied to MQTT). A run is flushed when a frame is not adjacent to it (a denied frame in between,
 * a frame assembled from several chunks) and at the end of every chunk.
 *
 * Frames come as (buffer, start, end), the Framer's own terms: a run is one buffer and a byte range
 * of it, and two frames are merged only when the second starts at the byte right after the first in
 * the same buffer, so the merged slice holds exactly them. One Buffer view is made per run written
 * (none when the run is the whole chunk), not one per frame.
 *
 * A run in the lent read buffer (net/lent-reads.ts) must leave it before the read callback returns,
 * so it is never handed to a write that could finish later: on a plain TCP socket with nothing
 * queued, it is written to the descriptor at once (the same non-blocking write Node itself tries
 * first); on a TLS socket with nothing queued, it is encrypted inside `write()` (lent-reads.ts,
 * `encryptsInWrite`); whatever the kernel does not take then, and any run behind a queue or for a
 * WebSocket peer, is written as a copy.
 *
 * A frame that straddled two reads is assembled in memory of its own and comes right before the
 * run of the frames after it; the two go out in one system call (a `writev` on the descriptor, one
 * corked write to a TLS socket, which encrypts them as one record), not one each.
 */
import { writeSync, writevSync } from 'node:fs'
import type { Writable } from 'node:stream'
import { encryptsInWrite, isLent, socketFd } from '../net/lent-reads.js'
import { copyRange, frameBuffer } from '../protocol/framer.js'

export class RunWriter {
  private socket: Writable | null = null
  /** The socket's descriptor for immediate writes of lent runs; -1 when it has none (TLS, WebSocket). */
  private fd = -1
  /** The socket encrypts lent bytes inside write() (TLS): written without a copy when nothing is queued. */
  private encrypts = false
  private run: Buffer | null = null
  private runStart = 0
  private runEnd = 0
  /** A frame in memory of its own, held to go out with the run after it. */
  private prefix: Buffer | null = null
  /** Bytes written through this writer (for the session's end-of-connection log). */
  bytes = 0

  attach(socket: Writable): void {
    this.socket = socket
    this.fd = socketFd(socket)
    this.encrypts = encryptsInWrite(socket)
  }

  /** The peer is gone: from now on what is written is dropped (a pending run too). */
  detach(): void {
    this.socket = null
    this.fd = -1
    this.encrypts = false
    this.run = null
    this.prefix = null
  }

  /** Queues `buf[start, end)`: extends the pending run when it follows it in the same buffer. */
  add(buf: Buffer, start: number, end: number): void {
    const run = this.run
    if (run === buf && start === this.runEnd) {
      this.runEnd = end
      return
    }
    if (run !== null) {
      if (this.prefix === null && !isLent(run)) this.prefix = frameBuffer(run, this.runStart, this.runEnd)
      else this.flush()
    }
    this.run = buf
    this.runStart = start
    this.runEnd = end
  }

  /** Queues a whole buffer (a frame assembled or made by Moat). */
  addFrame(frame: Buffer): void {
    this.add(frame, 0, frame.length)
  }

  /** Writes the pending run. Returns false when the socket asks the writer to wait for 'drain'. */
  flush(): boolean {
    const run = this.run
    if (run === null) return true
    this.run = null
    const prefix = this.prefix
    this.prefix = null
    const socket = this.socket
    if (socket === null || socket.destroyed) return true
    let start = this.runStart
    const end = this.runEnd
    if (prefix !== null) return this.flushAfter(prefix, run, start, end, socket)
    this.bytes += end - start
    if (!isLent(run)) return socket.write(frameBuffer(run, start, end))
    if (socket.writableLength === 0 && socket.writable) {
      if (this.encrypts && !socket.writableCorked) return socket.write(frameBuffer(run, start, end))
      if (this.fd >= 0) {
        start += writeNow(this.fd, run, start, end, socket)
        if (start === end) return true
      }
    }
    return socket.write(copyRange(run, start, end))
  }

  /** Writes one buffer after whatever run is pending (order is kept). */
  write(data: Buffer): boolean {
    this.flush()
    const socket = this.socket
    if (socket === null || socket.destroyed) return true
    this.bytes += data.length
    return socket.write(data)
  }

  /** Writes `prefix` (Moat's own memory) and then the run `run[start, end)` with one system call where it can. */
  private flushAfter(prefix: Buffer, run: Buffer, start: number, end: number, socket: Writable): boolean {
    this.bytes += prefix.length + end - start
    const lent = isLent(run)
    if (socket.writableLength === 0 && socket.writable && !socket.writableCorked) {
      if (lent && this.fd >= 0) {
        let done = writevNow(this.fd, prefix, frameBuffer(run, start, end), socket)
        if (done === prefix.length + end - start) return true
        if (done < prefix.length) {
          socket.write(prefix.subarray(done))
          done = prefix.length
        }
        return socket.write(copyRange(run, start + done - prefix.length, end))
      }
      if (!lent || this.encrypts) {
        // Corked, both reach the socket as one writev: a TLS socket encrypts them at once, as one record.
        socket.cork()
        socket.write(prefix)
        const ok = socket.write(frameBuffer(run, start, end))
        socket.uncork()
        return ok
      }
    }
    socket.write(prefix)
    return socket.write(lent ? copyRange(run, start, end) : frameBuffer(run, start, end))
  }
}

/**
 * Writes `buf[start, end)` to `fd` without waiting; returns how many bytes the kernel took (0 when
 * its buffer is full). A failed connection is handed to the socket, which reports it as usual
 * ('error', 'close'); the bytes then count as done.
 */
function writeNow(fd: number, buf: Buffer, start: number, end: number, socket: Writable): number {
  try {
    return writeSync(fd, buf, start, end - start)
  } catch (err) {
    return failedWrite(err, socket, end - start)
  }
}

/** writeNow for two buffers in one `writev`: how many bytes of the two the kernel took. */
function writevNow(fd: number, first: Buffer, second: Buffer, socket: Writable): number {
  try {
    return writevSync(fd, [first, second])
  } catch (err) {
    return failedWrite(err, socket, first.length + second.length)
  }
}

/** A full kernel buffer took nothing (0); any other failure goes to the socket and counts as done. */
function failedWrite(err: unknown, socket: Writable, length: number): number {
  if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0
  socket.destroy(err as Error)
  return length
}
