/**
 * The log lines of one turn of the event loop reach the log destination as one write. An
 * asynchronous write is a job for libuv's thread pool: a thread woken and a context switch, which
 * on a busy core costs more than the line itself, and a connect storm logs a line or two per
 * connection. Lines still wait for nothing: the turn's batch is written before the next turn polls.
 */
/** What the batch writes to (pino's destination). */
export interface LineSink {
  write(lines: string): boolean
  flush(done: (err?: Error) => void): void
}

/** Batches not yet written when the process exits, written out before pino's own exit flush. */
const live = new Set<TurnBatch>()
let exitHooked = false

function drainAll(): void {
  for (const batch of live) batch.drain()
}

function onTurnEnd(batch: TurnBatch): void {
  batch.drain()
}

export class TurnBatch {
  private readonly sink: LineSink
  private pending = ''
  private scheduled = false

  constructor(sink: LineSink) {
    this.sink = sink
    live.add(this)
    if (!exitHooked) {
      exitHooked = true
      // Before pino's exit hook, which writes the destination's buffer out synchronously.
      process.prependListener('exit', drainAll)
    }
  }

  write(line: string): boolean {
    this.pending += line
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(onTurnEnd, this)
    }
    return true
  }

  /** Hands the turn's lines to the destination now. */
  drain(): void {
    this.scheduled = false
    if (this.pending === '') return
    const lines = this.pending
    this.pending = ''
    this.sink.write(lines)
  }

  flush(done: (err?: Error) => void): void {
    this.drain()
    this.sink.flush(done)
  }
}
