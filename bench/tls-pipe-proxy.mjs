// The naive Node TLS pass-through, for reference in `npm run bench` (target `node-tls-pipe`): each
// client's TLS socket (Node's defaults: TLS 1.2 and 1.3, session tickets on) piped to its own plain
// broker socket, nothing read or checked. What any Node proxy that terminates TLS costs at least.
//   node tls-pipe-proxy.mjs LISTEN_PORT BROKER_PORT CERT_FILE KEY_FILE
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

const [listenPort, brokerPort, certFile, keyFile] = process.argv.slice(2)
const server = tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (client) => {
  const broker = net.connect(Number(brokerPort), '127.0.0.1')
  client.setNoDelay(true)
  broker.setNoDelay(true)
  client.pipe(broker)
  broker.pipe(client)
  client.on('error', () => broker.destroy())
  broker.on('error', () => client.destroy())
  client.on('close', () => broker.destroy())
  broker.on('close', () => client.destroy())
})
server.on('tlsClientError', () => {})
server.listen(Number(listenPort), '127.0.0.1', () => console.log('listening'))
// A profiled run (BENCH_NODE_ARGS) is stopped with SIGTERM: exit normally so that the profile is written.
process.on('SIGTERM', () => process.exit(0))
