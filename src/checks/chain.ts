/**
 * The check chain: every client packet passes one ordered list of checks; the
 * first verdict that is not Forward decides. Built once per configuration (CheckChain), instantiated
 * once per session (SessionChecks), with one array per hook holding only the checks that implement
 * it: an absent feature costs nothing per packet.
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
  private readonly hooks = new SharedHooks()

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
    const checks: Check[] = []
    for (const make of this.makers) checks.push(make(s))
    return new SessionChecks(checks, this.hooks)
  }
}

/**
 * The publish and deliver hook functions of a configuration's sessions, in chain order, kept once:
 * a session whose checks have the same functions (every session of a configuration, in practice)
 * shares the list and holds none of its own. The per-packet loops call these
 * (`hooks[i].call(checks[i], …)`) rather than `checks[i][hook](…)` or `checks[i].onPublish(…)`: the
 * checks are of five or more classes, which makes that load megamorphic and costly on the hot
 * path (`npm run bench:micro` measures the publish path).
 */
export class SharedHooks {
  private publish: PublishHook[] = []
  private deliver: PublishHook[] = []

  onPublish(checks: Check[]): PublishHook[] {
    return this.publish = sameOrNew(this.publish, checks, 'onPublish')
  }

  onDeliver(checks: Check[]): PublishHook[] {
    return this.deliver = sameOrNew(this.deliver, checks, 'onDeliver')
  }
}

function sameOrNew(cached: PublishHook[], checks: Check[], hook: 'onPublish' | 'onDeliver'): PublishHook[] {
  if (cached.length === checks.length) {
    let i = 0
    while (i < checks.length && checks[i]![hook] === cached[i]) i++
    if (i === checks.length) return cached
  }
  return checks.map((c) => c[hook] as PublishHook)
}

/** A hook no check implements: one shared empty list, not one per session (never added to). */
const NO_CHECKS: Check[] = []

/**
 * The checks implementing one hook, in a list of exactly their size: filter() leaves room for 16
 * (150 bytes per list, nine lists per session: memory per idle connection); slice() copies
 * to an exact fit of the same elements kind.
 */
function hooked(checks: Check[], implemented: (c: Check) => boolean): Check[] {
  const out = checks.filter(implemented)
  return out.length === 0 ? NO_CHECKS : out.slice()
}

export class SessionChecks {
  private readonly connect: Check[]
  private readonly publish: Check[]
  /** publish's hook functions, in its order (shared: SharedHooks). */
  private readonly publishHooks: PublishHook[]
  private readonly subscribe: Check[]
  private readonly unsubscribe: Check[]
  private readonly deliver: Check[]
  private readonly deliverHooks: PublishHook[]
  private readonly packet: Check[]
  private readonly closing: Check[]
  private readonly reviewing: Check[]
  private readonly reviewingConnection: Check[]
  /** The check that decided the last non-Forward verdict (for logs). */
  decidedBy = ''

  constructor(checks: Check[], shared: SharedHooks = new SharedHooks()) {
    this.connect = hooked(checks, (c) => c.onConnect !== undefined)
    this.publish = hooked(checks, (c) => c.onPublish !== undefined)
    this.publishHooks = shared.onPublish(this.publish)
    this.subscribe = hooked(checks, (c) => c.onSubscribe !== undefined)
    this.unsubscribe = hooked(checks, (c) => c.onUnsubscribe !== undefined)
    this.deliver = hooked(checks, (c) => c.onDeliver !== undefined)
    this.deliverHooks = shared.onDeliver(this.deliver)
    this.packet = hooked(checks, (c) => c.onPacket !== undefined)
    this.closing = hooked(checks, (c) => c.onClose !== undefined)
    this.reviewing = hooked(checks, (c) => c.reviewSubscription !== undefined)
    this.reviewingConnection = hooked(checks, (c) => c.reviewConnection !== undefined)
  }

  get hasDeliverChecks(): boolean {
    return this.deliver.length > 0
  }

  /** Synchronous when every check is; a promise only from the first check that returns one. */
  runConnect(connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict> {
    return this.connectFrom(0, connect, s)
  }

  private connectFrom(start: number, connect: IConnectPacket, s: SessionState): Verdict | Promise<Verdict> {
    const checks = this.connect
    for (let i = start; i < checks.length; i++) {
      const check = checks[i]!
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
    return this.runPublishHooks(this.publish, this.publishHooks, p, s)
  }

  runDeliver(p: PublishView, s: SessionState): Verdict {
    return this.runPublishHooks(this.deliver, this.deliverHooks, p, s)
  }

  private runPublishHooks(checks: Check[], hooks: PublishHook[], p: PublishView, s: SessionState): Verdict {
    for (let i = 0; i < checks.length; i++) {
      const verdict = hooks[i]!.call(checks[i]!, p, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = checks[i]!.name
        return verdict
      }
    }
    return FORWARD
  }

  /** Any client packet but CONNECT, PUBLISH and DISCONNECT (packet rates); Forward when no check cares. */
  runPacket(type: number, size: number, s: SessionState): Verdict {
    const checks = this.packet
    for (let i = 0; i < checks.length; i++) {
      const verdict = checks[i]!.onPacket!(type, size, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = checks[i]!.name
        return verdict
      }
    }
    return FORWARD
  }

  runSubscribe(subscription: ISubscription, s: SessionState): Verdict {
    const checks = this.subscribe
    for (let i = 0; i < checks.length; i++) {
      const verdict = checks[i]!.onSubscribe!(subscription, s)
      if (verdict.action !== Action.Forward) {
        this.decidedBy = checks[i]!.name
        return verdict
      }
    }
    return FORWARD
  }

  runUnsubscribe(filter: string, s: SessionState): Verdict {
    return this.runFilterHooks(this.unsubscribe, filter, s, 'onUnsubscribe')
  }

  /** After a reload: may the client keep this subscription? */
  reviewSubscription(filter: string, s: SessionState): Verdict {
    return this.runFilterHooks(this.reviewing, filter, s, 'reviewSubscription')
  }

  private runFilterHooks(checks: Check[], filter: string, s: SessionState, hook: 'onUnsubscribe' | 'reviewSubscription'): Verdict {
    for (let i = 0; i < checks.length; i++) {
      const check = checks[i]!
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
    const checks = this.reviewingConnection
    for (let i = 0; i < checks.length; i++) {
      let verdict: Verdict
      try {
        verdict = checks[i]!.reviewConnection!(s)
      } catch {
        verdict = CHECK_FAILED
      }
      if (verdict.action !== Action.Forward) {
        this.decidedBy = checks[i]!.name
        return verdict
      }
    }
    return FORWARD
  }

  close(s: SessionState): void {
    for (const check of this.closing) {
      try {
        check.onClose!(s)
      } catch {
        // A check's cleanup must not stop the others.
      }
    }
  }
}
