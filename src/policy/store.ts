/**
 * The running configuration and the check chain compiled from it, swapped by reference on reload.
 * Each swap bumps `generation`; a session compares it with its own once per received
 * chunk (one integer compare) and adopts the new policy for the packets that follow.
 */
import { createHash } from 'node:crypto'
import { CheckChain } from '../checks/chain.js'
import type { CheckEnv, CheckFactory } from '../checks/check.js'
import { detachedCheckEnv } from '../checks/env.js'
import { checkFactories } from '../checks/index.js'
import type { MoatConfig } from '../config/types.js'

export class PolicyStore {
  config: MoatConfig
  chain: CheckChain
  generation = 1
  /** A short fingerprint of the running policy, so operators can tell which one each instance runs. */
  hash: string
  private readonly factories: readonly CheckFactory[]
  readonly env: CheckEnv

  constructor(config: MoatConfig, factories: readonly CheckFactory[] = checkFactories, env: CheckEnv = detachedCheckEnv()) {
    this.factories = factories
    this.env = env
    this.config = config
    this.chain = CheckChain.build(config, factories, env)
    this.hash = policyHash(config)
  }

  /** Compiles the new config first, so a factory that throws leaves the running policy untouched. */
  swap(config: MoatConfig): void {
    const chain = CheckChain.build(config, this.factories, this.env)
    this.config = config
    this.chain = chain
    this.hash = policyHash(config)
    this.generation += 1
  }
}

/** SHA-256 of the compiled policy (not of the file: comments and key order do not count), 16 hex digits. */
export function policyHash(config: MoatConfig): string {
  return createHash('sha256').update(JSON.stringify({ ...config, file: undefined })).digest('hex').slice(0, 16)
}
