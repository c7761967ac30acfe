/**
 * `moat passwd FILE USER`: adds or replaces USER in a password file with a scrypt hash. The
 * password is read from stdin when it is not a terminal (one line; e.g. `echo "$PW" | moat passwd
 * …`), or prompted for twice without echo. The file is created with mode 0600; other lines
 * (Mosquitto's $7$/$6$ ones included) are kept as they are.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
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
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l !== '') : []
  const at = lines.findIndex((l) => l.slice(0, l.indexOf(':')) === user)
  if (at >= 0) lines[at] = line
  else lines.push(line)
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, lines.join('\n') + '\n', { mode: 0o600 })
  renameSync(tmp, file)
}
