import { describe, expect, it } from 'vitest'
import type { CheckFactory } from '../../../src/checks/check.js'
import { PolicyStore } from '../../../src/policy/store.js'
import { configFromObject } from '../../../src/config/load.js'
import type { MoatConfig } from '../../../src/config/types.js'

const config = (maxPacketSize: number): MoatConfig => configFromObject({
  listeners: [{ name: 'mqtt', protocol: 'mqtt', port: 0 }],
  upstream: { host: '127.0.0.1', port: 1883 },
  limits: { maxPacketSize },
})

describe('PolicyStore', () => {
  it('swaps config and chain by reference and bumps the generation', () => {
    const store = new PolicyStore(config(100))
    const chain = store.chain
    expect(store.generation).toBe(1)
    store.swap(config(200))
    expect(store.generation).toBe(2)
    expect(store.config.limits.maxPacketSize).toBe(200)
    expect(store.chain).not.toBe(chain)
  })

  it('keeps the running policy when the new one fails to compile', () => {
    const picky: CheckFactory = {
      name: 'picky',
      create: (c) => {
        if (c.limits.maxPacketSize > 1000) throw new Error('too big')
        return null
      },
    }
    const store = new PolicyStore(config(100), [picky])
    expect(() => store.swap(config(5000))).toThrow('too big')
    expect(store.generation).toBe(1)
    expect(store.config.limits.maxPacketSize).toBe(100)
  })
})
