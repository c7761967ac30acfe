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
  },
})
