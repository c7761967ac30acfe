/**
 * `moat passwd FILE USER`: adds or replaces USER in a password file with a scrypt hash. The
 * password is read from stdin when it is not a terminal (one line; e.g. `echo "$PW" | moat passwd
 * …`), or prompted for twice without echo. A new file is created with mode 0600; an existing one
 * keeps its mode and owner (the service that reads it, a container's user or a group, still can),
 * and its other lines (Mosquitto's $7$/$6$ ones included) as they are.
 */
import { chmodSync, chownSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs'
import { MoatError } from '../errors.js'
import { hashPassword } from './password-hash.js'

class PasswdError extends MoatError {
  constructor(message: string) {
    super('MOAT_ERR_PASSWD', message)
  }
}

async function readStdin(input: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of input as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > 64 * 1024) throw new PasswdError('the password on stdin is longer than 64 KiB')
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  return text.replace(/\r?\n$/, '')
}

/** Reads one line from a terminal without echoing it. */
function prompt(question: string, input: NodeJS.ReadStream, output: NodeJS.WritableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    output.write(question)
    let line = ''
    input.setRawMode?.(true)
    input.resume()
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null)
        if (ch === '\u0003') return done(new PasswdError('cancelled'))
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1)
        else line += ch
      }
    }
    const done = (err: Error | null): void => {
      input.off('data', onData)
      input.setRawMode?.(false)
      input.pause()
      output.write('\n')
      if (err) reject(err)
      else resolve(line)
    }
    input.on('data', onData)
  })
}

export async function passwdCommand(file: string, user: string, io: { input: NodeJS.ReadStream; output: NodeJS.WritableStream }): Promise<void> {
  if (user === '' || user.includes(':') || /[\r\n]/.test(user)) throw new PasswdError('a user name must not be empty nor contain ":" or a line break')
  let password: string
  if (io.input.isTTY) {
    password = await prompt('Password: ', io.input, io.output)
    if (await prompt('Again: ', io.input, io.output) !== password) throw new PasswdError('the two passwords differ')
  } else {
    password = await readStdin(io.input)
  }
  if (password === '') throw new PasswdError('empty password')
  const line = `${user}:${await hashPassword(Buffer.from(password, 'utf8'))}`
  const existing = statSync(file, { throwIfNoEntry: false })
  const lines = existing === undefined ? [] : readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l !== '')
  const at = lines.findIndex((l) => l.slice(0, l.indexOf(':')) === user)
  if (at >= 0) lines[at] = line
  else lines.push(line)
  try {
    writePasswordFile(file, lines.join('\n') + '\n', existing)
  } catch (err) {
    throw new PasswdError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/**
 * Replaces the file whole (a reader never sees half of it), as `existing` was: mode and owner.
 * Only root may give a file to another user: anyone else rewrites a file they do not own in place,
 * which keeps its owner (Moat's watcher waits for a file to settle before it reads it).
 */
function writePasswordFile(file: string, text: string, existing: Stats | undefined): void {
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, text, { mode: 0o600 })
  try {
    if (existing !== undefined) {
      chmodSync(tmp, existing.mode & 0o7777)
      const own = statSync(tmp)
      if (own.uid !== existing.uid || own.gid !== existing.gid) chownSync(tmp, existing.uid, existing.gid)
    }
    renameSync(tmp, file)
  } catch (err) {
    rmSync(tmp, { force: true })
    if ((err as NodeJS.ErrnoException).code !== 'EPERM' || existing === undefined) throw err
    writeFileSync(file, text)
  }
}
