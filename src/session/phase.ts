/** The stages of a session's life, in order: a session only ever moves to a later one. */
export const Phase = {
  /** Reading the client's first packet, which must be a CONNECT. */
  AwaitConnect: 0,
  /** The CONNECT is with the checks and the connection limits. */
  Checking: 1,
  /** The CONNECT passed: the broker is being dialled. */
  Dialing: 2,
  Open: 3,
  /** Ended: waiting for both peers to close (or the linger timeout). */
  Closing: 4,
  Closed: 5,
} as const
export type Phase = (typeof Phase)[keyof typeof Phase]
