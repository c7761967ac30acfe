// Moat in its own process for the load tests and `npm run bench:load`: the built Moat (dist/, as
// the CLI runs it), plus an IPC channel over which the parent asks for the session count, counters
// and memory (after a full GC, with --expose-gc), so "memory returns after the storm" can be
// measured in the process that holds the sessions.
//
//   node --expose-gc bench/moat-child.mjs <config.yaml>      (spawned with an 'ipc' stdio slot)
import { writeHeapSnapshot } from 'node:v8'
import { loadConfig } from '../dist/config/load.js'
import { Moat } from '../dist/moat.js'

const moat = new Moat(loadConfig(process.argv[2]))
await moat.start()
process.send({ ready: true, port: moat.address().port })

const reasons = ['connect_timeout', 'client_disconnect', 'client_closed', 'client_error', 'upstream_unavailable']
process.on('message', (message) => {
  if (message.cmd === 'snapshot') {
    if (message.gc && typeof globalThis.gc === 'function') { globalThis.gc(); globalThis.gc() }
    const mem = process.memoryUsage()
    const closed = {}
    for (const reason of reasons) closed[reason] = moat.stats.closedFor(reason)
    process.send({ id: message.id, rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, sessions: moat.sessionCount, closed, upstreamConnectFailures: moat.stats.upstreamConnectFailures })
  } else if (message.cmd === 'heapsnapshot') {
    // For finding what a session holds: compare a snapshot with no session to one with N.
    process.send({ id: message.id, path: writeHeapSnapshot(message.path) })
  } else if (message.cmd === 'stop') {
    moat.shutdown(0).then(() => process.exit(0))
  }
})
// The parent went away: do not outlive it.
process.on('disconnect', () => process.exit(0))
