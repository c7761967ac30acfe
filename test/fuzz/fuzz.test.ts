/**
 * The fuzz suite in CI: a bounded run (FUZZ_SECONDS, default 15 s) of the engine against a live Moat
 * in front of a recording upstream. A fresh seed per run unless FUZZ_SEED is set; the seed is in
 * the test's output and in every failure message, so `npm run fuzz -- --seed S` replays it.
 * Longer runs: `npm run fuzz -- --seconds 600`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { captureSessions, generatedSessions, runFuzz, startTarget, type LiveTarget, type Version } from './engine.js'

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 15)
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31)
const VERSIONS: readonly Version[] = [3, 4, 5]

describe(`fuzz: malformed and mutated packets of every type and version (seed ${SEED}, ${SECONDS} s)`, () => {
  let target: LiveTarget

  beforeAll(async () => {
    target = await startTarget()
  })
  afterAll(async () => {
    await target?.stop()
  })

  it('never lets a malformed or forbidden byte reach the broker, closes only the offender, keeps serving and keeps memory flat', async () => {
    const captured = await captureSessions(target, VERSIONS)
    expect(captured.length).toBe(VERSIONS.length)
    // The captured sessions are valid by the upstream's own grammar: the baseline is clean.
    expect(target.upstream.violations).toEqual([])
    const pool = [...captured, ...generatedSessions(SEED, 60, VERSIONS)]
    const report = await runFuzz(target, pool, VERSIONS, { seconds: SECONDS, seed: SEED, log: (line) => console.log(line) })
    expect(report.findings, `fuzz seed ${SEED}: replay with FUZZ_SEED=${SEED} (npm run fuzz -- --seed ${SEED})`).toEqual([])
    expect(report.batches).toBeGreaterThan(0)
    expect(report.roundTrips).toBeGreaterThan(0)
    // Malformed clients were closed by Moat itself (not only by their own end of the socket).
    expect(report.closedByMoat).toBeGreaterThan(0)
    // Mutated sessions did reach the broker's side (not everything was refused at CONNECT).
    expect(report.upstreamFrames).toBeGreaterThan(report.batches)
    await expect.poll(() => target.moat.sessionCount, { timeout: 10_000 }).toBe(0)
  }, (SECONDS + 60) * 1000)
})
