/**
 * Writes forwarded frames with as few system calls as possible: consecutive frames that lie next to
 * each other in the same chunk are written as one slice of that chunk (kafka-proxy's copy-through,
 * applied to MQTT). A run is flushed when a frame is not adjacent to it (a denied frame in between,
 * a frame assembled from several chunks) and at the end of every chunk.
 *
 * Adjacency is judged on memory, not on chunks: two frames are merged only when the second starts at
 * the byte right after the first in the same ArrayBuffer, so the merged slice holds exactly them.
 */
import type { Writable } from 'node:stream'

export class RunWriter {
  private socket: Writable | null = null
  private run: Buffer | null = null
  private runLength = 0
  /** Bytes written through this writer (for the session's end-of-connection log). */
  bytes = 0

  attach(socket: Writable): void {
    this.socket = socket
  }

  add(frame: Buffer): void {
    const run = this.run
    if (run !== null && frame.buffer === run.buffer && frame.byteOffset === run.byteOffset + this.runLength) {
      this.runLength += frame.length
      return
    }
    if (run !== null) this.flush()
    this.run = frame
    this.runLength = frame.length
  }

  /** Writes the pending run. Returns false when the socket asks the writer to wait for 'drain'. */
  flush(): boolean {
    const run = this.run
    if (run === null) return true
    this.run = null
    const socket = this.socket
    if (socket === null || socket.destroyed) return true
    const length = this.runLength
    this.bytes += length
    const data = length === run.length ? run : Buffer.from(run.buffer, run.byteOffset, length)
    return socket.write(data)
  }

  /** Writes one buffer after whatever run is pending (order is kept). */
  write(data: Buffer): boolean {
    this.flush()
    const socket = this.socket
    if (socket === null || socket.destroyed) return true
    this.bytes += data.length
    return socket.write(data)
  }

  /** Forgets the pending run without writing it. */
  discard(): void {
    this.run = null
    this.runLength = 0
  }
}
