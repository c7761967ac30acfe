/** `moat audit --target`: an active probe of a broker (or of Moat). Being written. */
import type { Report } from './finding.js'

export interface ProbeOptions {
  readonly host: string
  readonly port: number
  readonly tls: boolean
  readonly ca: string | null
  readonly servername: string | null
  readonly timeoutMs: number
}

export async function probeTarget(options: ProbeOptions): Promise<Report> {
  throw new Error(`probe of ${options.host}:${options.port} is not implemented yet`)
}
