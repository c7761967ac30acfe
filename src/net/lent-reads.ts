/**
 * Lent reads: every plain TCP socket of the process reads into one shared buffer, lent to the
 * socket's callback for the duration of that call, instead of Node's default of a fresh 64 KiB
 * allocation per read handed on through the Readable stream ('data').
 *
 * Why: at a fixed rate most reads carry one small packet, and Node's read path (malloc and realloc
 * of the read buffer, an ArrayBuffer and a Buffer per read, Readable push and emit) is a large part
 * of a Node proxy's own CPU per message (bench/README.md compares the two).
 *
 * The mechanism is Node's own `onread` socket option (a user buffer and a callback, see the
 * net.Socket docs), applied to sockets the listener accepted, which the option cannot reach: the
 * three slots it sets are found by their descriptions on a socket, and the handle is switched with
 * the same `useUserBuffer` the option uses. A TLS socket is a net.Socket whose handle (TLSWrap)
 * takes the same user buffer, so its decrypted bytes are lent the same way. Where any of that is
 * missing (another Node, a WebSocket stream, a socket that already has bytes buffered),
 * `lendReads` returns false and the caller reads through 'data' as before.
 *
 * The contract that makes one buffer safe for every socket: **nothing may keep a view of the lent
 * buffer after the callback returns.** A frame kept for later is copied (`ownedCopy`), a partial
 * frame is assembled in the Framer's own buffer, a frame held while the Framer is stopped is
 * copied, and writes of lent bytes either complete synchronously or write a copy
 * (session/run-writer.ts). With MOAT_POISON_LENT_READS=1 (set for the whole test suite) the buffer
 * is overwritten after every callback, so a view kept by mistake forwards garbage and fails a test
 * instead of forwarding another client's bytes.
 */
import net, { type Socket } from 'node:net'
import tls from 'node:tls'
import { keptRange } from '../protocol/framer.js'

/** Bytes one read may return: Node's own default read size. */
const LENT_BUFFER_SIZE = 64 * 1024

/** The one buffer every lent read goes into (its own memory: allocUnsafe pools only small sizes). */
const lentBuffer = Buffer.allocUnsafe(LENT_BUFFER_SIZE)
const lentMemory = lentBuffer.buffer

/** What a lent read calls: `this` is the socket; the bytes are `buf[0, nread)`, valid only during the call. */
export type LentReadCallback = (this: Socket, nread: number, buf: Buffer) => void

interface ReadSlots {
  readonly buffer: symbol
  readonly callback: symbol
}

function findReadSlots(): ReadSlots | null {
  if (process.env.MOAT_LENT_READS === '0') return null
  const symbols = Object.getOwnPropertySymbols(new net.Socket())
  const buffer = symbols.find((s) => s.description === 'kBuffer')
  const callback = symbols.find((s) => s.description === 'kBufferCb')
  return buffer === undefined || callback === undefined ? null : { buffer, callback }
}

const slots = findReadSlots()

/** Whether this Node offers lent reads (false also when MOAT_LENT_READS=0 turns them off). */
export const lentReadsAvailable = slots !== null

/** MOAT_POISON_LENT_READS=1: overwrite the lent bytes after every callback (tests; see above). */
export const poisonLentReads = process.env.MOAT_POISON_LENT_READS === '1'
const POISON = 0xee

interface UserBufferHandle {
  useUserBuffer?: (buf: Uint8Array) => void
}

/**
 * Makes `socket` read into the lent buffer and call `callback` instead of emitting 'data'. Only for
 * TCP and TLS sockets with nothing buffered yet; returns false (and changes nothing) otherwise.
 * pause(), resume(), 'end', 'close' and 'error' behave as before.
 */
export function lendReads(socket: Socket, callback: LentReadCallback): boolean {
  if (slots === null || !(socket instanceof net.Socket)) return false
  if (socket.readableLength !== 0 || socket.listenerCount('data') !== 0) return false
  const handle = (socket as unknown as { _handle: UserBufferHandle | null })._handle
  if (handle === null || typeof handle.useUserBuffer !== 'function') return false
  const slotted = socket as unknown as Record<symbol, unknown>
  if (slotted[slots.buffer]) return false // already reading with a user buffer of its own
  slotted[slots.buffer] = lentBuffer
  slotted[slots.callback] = callback
  handle.useUserBuffer(lentBuffer)
  return true
}

/**
 * The descriptor of a plain TCP socket that is connected, for writes made at once (lent bytes,
 * session/run-writer.ts); -1 for anything else (TLS, WebSocket, not connected, lent reads off).
 */
export function socketFd(socket: unknown): number {
  if (slots === null || !(socket instanceof net.Socket) || socket instanceof tls.TLSSocket || socket.connecting) return -1
  const fd = (socket as unknown as { _handle: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : -1
}

/**
 * Whether `socket` encrypts what it is given inside `write()`: a TLS socket over lent reads' Node
 * (TLSWrap hands a single buffer to SSL_write at once, and copies what OpenSSL did not take). Lent
 * bytes written to it with nothing queued before them are therefore not kept (session/run-writer.ts).
 */
export function encryptsInWrite(socket: unknown): boolean {
  return slots !== null && socket instanceof tls.TLSSocket && socket.encrypted
}

/** True when `buf` is the lent buffer or a view of it: it must not be kept past the read callback. */
export function isLent(buf: Buffer): boolean {
  return buf.buffer === lentMemory
}

/** `buf[start, end)` as a Buffer that may be kept: a copy when `buf` is lent, else a view (no copy). */
export function ownedCopy(buf: Buffer, start: number, end: number): Buffer {
  return keptRange(buf, start, end, buf.buffer === lentMemory)
}

/** Called after a lent read's callback: poisons the bytes in test runs (see above). */
export function returnLent(nread: number): void {
  if (poisonLentReads) lentBuffer.fill(POISON, 0, nread)
}
