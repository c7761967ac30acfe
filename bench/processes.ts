/** What the end-to-end benchmarks share: child processes started until they say they are ready, free ports, CPU time from /proc. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Starts `command` and resolves once its output matches `ready` (rejects if it exits first). */
export function start(command: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const onExit = (code: number | null): void => reject(new Error(`${command} exited (${code}): ${out}`))
    const onData = (d: Buffer): void => {
      out += d
      const match = out.match(ready)
      if (match === null) return
      // Ready: stop collecting. Matching every later log line against all the output so far would
      // make this process (the load generator) slower with every line a server logs.
      child.stdout!.off('data', onData)
      child.stderr!.off('data', onData)
      child.off('exit', onExit)
      out = ''
      resolve({ child, match })
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.on('exit', onExit)
  })
}

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  const { port } = server.address() as net.AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

/** user+system CPU seconds of a process, from /proc. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid)
  return user + system
}

/**
 * User and kernel CPU seconds of a process, all threads (`/proc/PID/stat` utime and stime, 10 ms
 * ticks): how its CPU divides between its own code and the system calls it makes. Coarse; read it
 * over windows of seconds.
 */
export function cpuSplit(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 }
}

/**
 * CPU seconds of a process to the nanosecond: the run time of each of its threads, summed
 * (`/proc/PID/task/TID/schedstat`), where `/proc/PID/stat` counts 10 ms ticks. A thread that exits
 * takes its time with it: fine for the servers measured here, whose threads live as long as they.
 * Falls back to `cpuSeconds` when schedstat is not there.
 */
export function cpuSecondsPrecise(pid: number): number {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      } catch {
        // the thread exited between the listing and the read
      }
    }
    return ns / 1e9
  } catch {
    return cpuSeconds(pid)
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (polled every 25 ms, up to 10 s). */
export async function listening(port: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (up) return
    await sleep(25)
  }
  throw new Error(`nothing listens on ${port}`)
}

/** One CONNECT → CONNACK → DISCONNECT round on a fresh connection; resolves with the CONNACK return code (-1: none). */
export function connectRound(port: number, frame: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.setNoDelay(true)
    let code = -1
    s.on('error', () => {})
    s.on('data', (d: Buffer) => {
      if (code === -1 && d.length >= 4 && d[0] === 0x20) {
        code = d[3]!
        if (code === 0) s.end(Buffer.from([0xe0, 0x00]))
      }
    })
    s.on('close', () => resolve(code))
    s.write(frame)
  })
}

export interface ConnectLoopResult {
  readonly connectsPerSecond: number
  readonly refused: number
  readonly cpuMsPerConnect: number
}

/**
 * `clients` loops of connectRound(port, frame) at once: one second of warm-up (JIT, pools, a
 * cache's first entry), then `seconds` counted; CONNECTs per second and the CPU time of process
 * `pid` per CONNECT.
 */
export async function connectLoops(port: number, pid: number, frame: Buffer, clients: number, seconds: number): Promise<ConnectLoopResult> {
  let ok = 0
  let refused = 0
  let stop = false
  const loop = async (): Promise<void> => {
    while (!stop) {
      if ((await connectRound(port, frame)) === 0) ok++
      else refused++
    }
  }
  const loops = Array.from({ length: clients }, loop)
  await sleep(1000)
  const ok0 = ok
  const cpu0 = cpuSeconds(pid)
  const t0 = process.hrtime.bigint()
  await sleep(seconds * 1000)
  const count = ok - ok0
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = cpuSeconds(pid) - cpu0
  stop = true
  await Promise.all(loops)
  return { connectsPerSecond: Math.round(count / elapsed), refused, cpuMsPerConnect: Number(((cpu / count) * 1000).toFixed(3)) }
}
