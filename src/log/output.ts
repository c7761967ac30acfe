/**
 * Where the log goes (`log.file`, or standard output) and how it reads (`log.format`): JSON lines
 * for machines, or one readable line per event for people. A log file is opened for appending, so
 * the workers of `workers: N`, each with its own descriptor, can share it: on a local file system
 * the kernel places every write at the end, and a line is one write. `reopen()` opens the path
 * again after logrotate moved the file away. How lines are written: sink.ts.
 */
import { pino } from 'pino'
import type { LogConfig } from '../config/types.js'
import { ConfigError } from '../errors.js'
import { loggerOptions, type Logger } from './logger.js'
import { fileSink, stdoutSink, type LogSink } from './sink.js'

export interface LogOutput {
  readonly logger: Logger
  /** Opens `log.file` again at its path; false (nothing done) when the log goes to standard output. */
  reopen(): boolean
  /** Writes `text` as it is, in order with the log lines (the demo's banner). */
  print(text: string): void
}

/** `log.format: pretty` (and the demo's log): pino-pretty loads only for a process that uses it. */
async function prettyPrinter(colorize: boolean): Promise<(line: string) => string> {
  const { prettyFactory } = await import('pino-pretty')
  // No error-like keys: an error's stack stays inside the one line, as escaped JSON.
  return prettyFactory({ colorize, singleLine: true, errorLikeObjectKeys: [], ignore: 'pid,hostname,service', translateTime: 'SYS:standard' })
}

/**
 * The logger `config` asks for. `configFile` names the config in the error thrown when the log
 * file cannot be opened (a missing directory, no permission): found at start, not at the first line.
 */
export async function openLog(config: LogConfig, configFile = ''): Promise<LogOutput> {
  const file = config.file
  const pretty = config.format === 'json' ? null : await prettyPrinter(file === null && process.stdout.isTTY)
  const sink = openSink(file, pretty ?? undefined, configFile)
  const stream = pretty === null ? sink : {
    write: (line: string): boolean => sink.write(pretty(line)),
    flush: (done: (err?: Error) => void): void => sink.flush(done),
  }
  return { logger: pino(loggerOptions(config.level), stream), reopen: () => sink.reopen(), print: printer(sink) }
}

function openSink(file: string | null, render: ((line: string) => string) | undefined, configFile: string): LogSink {
  if (file === null) return stdoutSink(render)
  try {
    return fileSink(file)
  } catch (err) {
    throw new ConfigError('MOAT_ERR_CONFIG_INVALID', [{ file: configFile, path: 'log.file', message: `cannot open ${file} for appending: ${(err as Error).message}` }])
  }
}

/** Text written into the log's own stream lands after every line logged before it. */
function printer(sink: LogSink): (text: string) => void {
  return (text) => void sink.write(text)
}
