import net from 'node:net'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { RunWriter } from '../../../src/session/run-writer.js'

/** A real loopback socket pair; counts the write() calls the writer makes. */
async function socketPair(): Promise<{ writer: RunWriter; writes: Buffer[]; received: () => Promise<Buffer>; close: () => void }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [peer] = (await once(server, 'connection')) as [net.Socket]
  const chunks: Buffer[] = []
  peer.on('data', (c: Buffer) => chunks.push(c))
  const writes: Buffer[] = []
  const write = client.write.bind(client)
  client.write = ((data: Buffer) => { writes.push(data); return write(data) }) as typeof client.write
  const writer = new RunWriter()
  writer.attach(client)
  return {
    writer,
    writes,
    received: async () => {
      client.end()
      await once(peer, 'end')
      return Buffer.concat(chunks)
    },
    close: () => { client.destroy(); peer.destroy(); server.close() },
  }
}

describe('RunWriter', () => {
  it('writes adjacent frames of one chunk with a single write', async () => {
    const { writer, writes, received, close } = await socketPair()
    const chunk = Buffer.from('aaaabbbbcccc')
    writer.add(chunk, 0, 4)
    writer.add(chunk, 4, 8)
    writer.add(chunk, 8, 12)
    writer.flush()
    expect(writes).toHaveLength(1)
    expect((await received()).toString()).toBe('aaaabbbbcccc')
    close()
  })

  it('splits the run around a frame that was left out, keeping order', async () => {
    const { writer, writes, received, close } = await socketPair()
    const chunk = Buffer.from('aaaaXXXXcccc')
    writer.add(chunk, 0, 4)
    writer.add(chunk, 8, 12) // XXXX denied
    writer.write(Buffer.from('!'))
    writer.flush()
    expect(writes.map(String)).toEqual(['aaaa', 'cccc', '!'])
    expect((await received()).toString()).toBe('aaaacccc!')
    expect(writer.bytes).toBe(9)
    close()
  })

  it('never merges frames from different buffers', async () => {
    const { writer, writes, close } = await socketPair()
    writer.addFrame(Buffer.from('one'))
    writer.addFrame(Buffer.from('two'))
    writer.flush()
    expect(writes.map(String)).toEqual(['one', 'two'])
    close()
  })

  it('writes a run that is a whole chunk as the chunk itself, and a part of one as one view', async () => {
    const { writer, writes, close } = await socketPair()
    const whole = Buffer.from('aaaabbbb')
    writer.add(whole, 0, 4)
    writer.add(whole, 4, 8)
    writer.flush()
    const part = Buffer.from('ccccdddd')
    writer.add(part, 4, 8)
    writer.flush()
    expect(writes[0]).toBe(whole)
    expect(writes[1]!.toString()).toBe('dddd')
    expect(writes[1]!.buffer).toBe(part.buffer)
    close()
  })
})
