/**
 * The running configuration and the check chain compiled from it, swapped by reference on reload
 * (STYLE H5). Each swap bumps `generation`; a session compares it with its own once per received
 * chunk (one integer compare) and adopts the new policy for the packets that follow.
 */
import { CheckChain } from '../checks/chain.js'
import type { CheckEnv, CheckFactory } from '../checks/check.js'
import { detachedCheckEnv } from '../checks/env.js'
import { checkFactories } from '../checks/index.js'
import type { MoatConfig } from './types.js'

export class PolicyStore {
  config: MoatConfig
  chain: CheckChain
  generation = 1
  private readonly factories: readonly CheckFactory[]
  readonly env: CheckEnv

  constructor(config: MoatConfig, factories: readonly CheckFactory[] = checkFactories, env: CheckEnv = detachedCheckEnv()) {
    this.factories = factories
    this.env = env
    this.config = config
    this.chain = CheckChain.build(config, factories, env)
  }

  /** Compiles the new config first, so a factory that throws leaves the running policy untouched. */
  swap(config: MoatConfig): void {
    const chain = CheckChain.build(config, this.factories, this.env)
    this.config = config
    this.chain = chain
    this.generation += 1
  }
}
