#!/usr/bin/env node
// The fuzz suite on demand: `npm run fuzz -- --seconds 600 [--seed 12345]`.
// Runs test/fuzz/fuzz.test.ts through vitest with FUZZ_SECONDS / FUZZ_SEED (CI runs it for 15 s).
import { spawnSync } from 'node:child_process'

const args = process.argv.slice(2)
const env = { ...process.env }
for (let i = 0; i < args.length; i++) {
  const arg = args[i]
  const value = args[i + 1]
  if ((arg === '--seconds' || arg === '--seed') && value !== undefined && /^\d+$/.test(value)) {
    env[arg === '--seconds' ? 'FUZZ_SECONDS' : 'FUZZ_SEED'] = value
    i++
  } else {
    console.error(`usage: npm run fuzz -- [--seconds N] [--seed S]   (unknown or bad argument: ${arg})`)
    process.exit(2)
  }
}
const result = spawnSync('npx', ['vitest', 'run', 'test/fuzz/fuzz.test.ts', 'test/fuzz/corpus.test.ts'], { stdio: 'inherit', env })
process.exit(result.status ?? 1)
