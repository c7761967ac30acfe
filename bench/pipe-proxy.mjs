// The naive Node proxy, for reference in `npm run bench` (target `node-pipe`): each client socket
// piped to its own broker socket, nothing read or checked. What any Node proxy costs at least.
//   node pipe-proxy.mjs LISTEN_PORT BROKER_PORT
import net from 'node:net'

const [listenPort, brokerPort] = process.argv.slice(2).map(Number)
net.createServer((client) => {
  const broker = net.connect(brokerPort, '127.0.0.1')
  client.setNoDelay(true)
  broker.setNoDelay(true)
  client.pipe(broker)
  broker.pipe(client)
  client.on('error', () => broker.destroy())
  broker.on('error', () => client.destroy())
  client.on('close', () => broker.destroy())
  broker.on('close', () => client.destroy())
}).listen(listenPort, '127.0.0.1', () => console.log('listening'))
// A profiled run (BENCH_NODE_ARGS) is stopped with SIGTERM: exit normally so that the profile is written.
process.on('SIGTERM', () => process.exit(0))
