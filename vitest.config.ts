import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Integration files each start their own broker and proxy on port 0; two cores.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
    allowOnly: false,
    // Every lent read buffer is overwritten after its callback (src/net/lent-reads.ts), in this
    // process and in every Moat the tests spawn: a view of it kept by mistake forwards garbage and
    // fails the test that relayed it.
    env: { MOAT_POISON_LENT_READS: '1' },
  },
})
