/**
 * The check chain: every client packet passes one ordered list of checks; the
 * first verdict that is not Forward decides. Built once per configuration (CheckChain), instantiated
 * once per session (SessionChecks); for each hook, the positions of the checks that implement it
 * (HookLayout, shared by the sessions): an absent feature costs nothing per packet.
 *
 * Per packet the run is a plain loop: no closure, no promise. Only runConnect may go asynchronous,
 * and only when a check actually returns a thenable.
 */
import type { IConnectPacket, ISubscription } from 'mqtt-packet'
import type { MoatConfig } from '../config/types.js'
import type { PublishView } from '../protocol/publish.js'
import { ReasonCode } from '../protocol/reason.js'
import type { SessionState } from '../client/session-state.js'
import type { Check, CheckEnv, CheckFactory } from './check.js'
import { detachedCheckEnv } from './env.js'
import { checkFactories } from './index.js'
import { Action, disconnect, FORWARD, type Verdict } from './verdict.js'

type FilterHook = (filter: string, s: SessionState) => Verdict
type PublishHook = (this: Check, p: PublishView, s: SessionState) => Verdict

/** A check that threw or whose promise rejected: fail closed (refused, never forwarded). */
export const CHECK_FAILED = disconnect(ReasonCode.ImplementationSpecificError, 'check_failed')

function isThenable(value: unknown): value is PromiseLike<Verdict> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<Verdict>).then === 'function'
}

export class CheckChain {
  private readonly makers: ReadonlyArray<(s: SessionState) => Check>
  readonly names: readonly string[]
  /** The hook layout of the last session made: every session of a configuration shares it, in practice. */
  private layout: HookLayout | null = null

  private constructor(makers: Array<(s: SessionState) => Check>, names: string[]) {
    this.makers = makers
    this.names = names
  }

  static build(config: MoatConfig, factories: readonly CheckFactory[] = checkFactories, env: CheckEnv = detachedCheckEnv()): CheckChain {
    const makers: Array<(s: SessionState) => Check> = []
    const names: string[] = []
    for (const factory of factories) {
      const make = factory.create(config, env)
      if (make === null) continue
      makers.push(make)
      names.push(factory.name)
    }
    return new CheckChain(makers, names)
  }

  forSession(s: SessionState): SessionChecks {
    const makers = this.makers
    const checks = new Array<Check>(makers.length)
    for (let i = 0; i < makers.length; i++) checks[i] = makers[i]!(s)
    let layout = this.layout
    if (layout === null || !layout.fits(checks)) layout = this.layout = new HookLayout(checks)
    return new SessionChecks(checks, layout)
  }
}

const HOOKS = ['onConnect', 'onPublish', 'onSubscribe', 'onUnsubscribe', 'onDeliver', 'onPacket', 'onClose', 'reviewSubscription', 'reviewConnection'] as const
type HookName = typeof HOOKS[number]

/**
 * Which checks of a session implement each hook, as positions in its list of checks, and the publish
 * and deliver hook functions in that order. A session holds its checks and a layout, no list per
 * hook: every session whose checks have the same hook functions (every session of a configuration,
 * in practice) shares one layout. The per-packet loops call the functions kept here
 * (`publishHooks[i].call(checks[publish[i]], …)`) rather than `checks[i].onPublish(…)`: the checks are
 * of five or more classes, which makes that load megamorphic and costly on the hot path
 * (`npm run bench:micro` measures the publish path).
 */
export class HookLayout {
  readonly connect: number[]
  readonly publish: number[]
  readonly publishHooks: PublishHook[]
  readonly subscribe: number[]
  readonly unsubscribe: number[]
  readonly deliver: number[]
  readonly deliverHooks: PublishHook[]
  readonly packet: number[]
  readonly closing: number[]
  readonly reviewing: number[]
  readonly reviewingConnection: number[]
  /** Every hook function of every check, check by check (HOOKS order): what fits() compares. */
  private readonly functions: unknown[]

  constructor(checks: readonly Check[]) {
    this.functions = []
    for (const check of checks) for (const hook of HOOKS) this.functions.push(check[hook])
    this.connect = implementing(checks, 'onConnect')
    this.publish = implementing(checks, 'onPublish')
    this.publishHooks = this.publish.map((i) => checks[i]!.onPublish as PublishHook)
    this.subscribe = implementing(checks, 'onSubscribe')
    this.unsubscribe = implementing(checks, 'onUnsubscribe')
    this.deliver = implementing(checks, 'onDeliver')
    this.deliverHooks = this.deliver.map((i) => checks[i]!.onDeliver as PublishHook)
    this.packet = implementing(checks, 'onPacket')
    this.closing = implementing(checks, 'onClose')
    this.reviewing = implementing(checks, 'reviewSubscription')
    this.reviewingConnection = implementing(checks, 'reviewConnection')
  }

  /** Whether `checks` have exactly the hook functions this layout was made from. */
  fits(checks: readonly Check[]): boolean {
    const functions = this.functions
    if (functions.length !== checks.length * HOOKS.length) return false
    for (let i = 0; i < checks.length; i++) if (!sameHooks(checks[i]!, functions, i * HOOKS.length)) return false
    return true
  }
}

/**
 * Whether `c`'s hooks are `f[at…]`, in HOOKS order. Named loads: a keyed `c[hook]` on checks of a
 * handful of classes is a megamorphic lookup per hook, several times dearer (it ran every session).
 */
function sameHooks(c: Check, f: readonly unknown[], at: number): boolean {
  return c.onConnect === f[at] && c.onPublish === f[at + 1] && c.onSubscribe === f[at + 2] &&
    c.onUnsubscribe === f[at + 3] && c.onDeliver === f[at + 4] && c.onPacket === f[at + 5] &&
    c.onClose === f[at + 6] && c.reviewSubscription === f[at + 7] && c.reviewConnection === f[at + 8]
}

function implementing(checks: readonly Check[], hook: HookName): number[] {
  const positions: number[] = []
  for (let i = 0; i < checks.length; i++) if (checks[i]![hook] !== undefined) positions.push(i)
  return positions
}

export class SessionChecks {
  private readonly checks: Check[]
  private readonly layout: HookLayout
  /** The check that decided the last non-Forward verdict (for logs). */
  decidedBy = ''

  constructor(checks: Check[], layout: HookLayout = new HookLayout(checks)) {
    this.checks = checks
    this.layout = layout
  }

  get hasDeliverChecks(): boolean {
    return this.layout.deliver.length > 0
  }

  /** Synchronous when every check is; a promise only from the first check that returns one. */
  runConnect(connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict> {
    return this.connectFrom(0, connect, s)
  }

  private connectFrom(start: number, connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict> {
    const at = this.layout.connect
    for (let i = start; i < at.length; i++) {
      const check = this.checks[at[i]!]!
      let result: Verdict | Promise<Verdict>
      try {
        result = check.onConnect!(connect, s)
      } catch {
        this.decidedBy = check.name
        return CHECK_FAILED
      }
      if (isThenable(result)) return this.awaitConnect(result, check, i, connect, s)
      if (result.action !== Action.Forward) {
        this.decidedBy = check.name
        return result
      }
    }
    return FORWARD
  }

  private async awaitConnect(
    pending: Promise<Verdict>, check: Check, index: number, connect: IConnectPacket, s: SessionState,
  ): Promise<Verdict> {
    let result: Verdict
    try {
      result = await pending
    } catch {
      this.decidedBy = check.name
      return CHECK_FAILED
    }
    if (result.action !== Action.Forward) {
      this.decidedBy = check.name
      return result
    }
    return this.connectFrom(index + 1, connect, s)
  }

  runPublish(p: PublishView, s: SessionState): Verdict {
    return this.runPublishHooks(this.layout.publish, this.layout.publishHooks, p, s)
  }

  runDeliver(p: PublishView, s: SessionState): Verdict {
    return this.runPublishHooks(this.layout.deliver, this.layout.deliverHooks, p, s)
  }

  private runPublishHooks(at: number[], hooks: PublishHook[], p: PublishView, s: SessionState): Verdict {
    const checks = this.checks
    for (let i = 0; i < at.length; i++) {
      const check = checks[at[i]!]!
      const verdict = hooks[i]!.call(check, p, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = check.name
        return verdict
      }
    }
    return FORWARD
  }

  /** Any client packet but CONNECT, PUBLISH and DISCONNECT (packet rates); Forward when no check cares. */
  runPacket(type: number, size: number, s: SessionState): Verdict {
    const at = this.layout.packet
    for (let i = 0; i < at.length; i++) {
      const check = this.checks[at[i]!]!
      const verdict = check.onPacket!(type, size, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = check.name
        return verdict
      }
    }
    return FORWARD
  }

  runSubscribe(subscription: ISubscription, s: SessionState): Verdict {
    const at = this.layout.subscribe
    for (let i = 0; i < at.length; i++) {
      const check = this.checks[at[i]!]!
      const verdict = check.onSubscribe!(subscription, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = check.name
        return verdict
      }
    }
    return FORWARD
  }

  runUnsubscribe(filter: string, s: SessionState): Verdict {
    return this.runFilterHooks(this.layout.unsubscribe, filter, s, 'onUnsubscribe')
  }

  /** After a reload: may the client keep this subscription? */
  reviewSubscription(filter: string, s: SessionState): Verdict {
    return this.runFilterHooks(this.layout.reviewing, filter, s, 'reviewSubscription')
  }

  private runFilterHooks(at: number[], filter: string, s: SessionState, hook: 'onUnsubscribe' | 'reviewSubscription'): Verdict {
    for (let i = 0; i < at.length; i++) {
      const check = this.checks[at[i]!]!
      const verdict = (check[hook] as FilterHook).call(check, filter, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = check.name
        return verdict
      }
    }
    return FORWARD
  }

  /** After a reload: may the client stay connected? */
  reviewConnection(s: SessionState): Verdict {
    const at = this.layout.reviewingConnection
    for (let i = 0; i < at.length; i++) {
      const check = this.checks[at[i]!]!
      let verdict: Verdict
      try {
        verdict = check.reviewConnection!(s)
      } catch {
        verdict = CHECK_FAILED
      }
      if (verdict.action !== Action.Forward) {
        this.decidedBy = check.name
        return verdict
      }
    }
    return FORWARD
  }

  close(s: SessionState): void {
    const at = this.layout.closing
    for (let i = 0; i < at.length; i++) {
      try {
        this.checks[at[i]!]!.onClose!(s)
      } catch {
        // A check's cleanup must not stop the others.
      }
    }
  }
}
