/**
 * The fan-in subscriber, as its own process (forked by scenarios/fan-in.ts; it inherits the load
 * generator's core): with the publishers' event loop busy writing, a subscriber in the same process
 * would be read late, and the broker would drop QoS 0 messages queued for it. It answers each
 * 'count' message with the number of PUBLISH frames received so far.
 *
 *   node subscriber.js HOST PORT CLIENT_ID USER PASSWORD FILTER QOS [CA_FILE (TLS)]
 */
import { openClient } from './loadgen.js'

const [host, port, clientId, username, password, filter, qos, caFile] = process.argv.slice(2)
const sub = await openClient({ host: host!, port: Number(port), ...(caFile === undefined ? {} : { tls: { caFile } }) }, { clientId: clientId!, username: username!, password: password! })
await sub.subscribe(filter!, Number(qos) === 1 ? 1 : 0)
process.on('message', (m: string) => {
  if (m === 'count') process.send!({ publishes: sub.publishes, closed: sub.closed })
  else if (m === 'stop') {
    sub.close()
    process.disconnect()
  }
})
process.send!({ ready: true })
