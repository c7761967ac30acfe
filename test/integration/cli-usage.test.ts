/**
 * The command line's own words, with the real binary: every command's --help prints that command's
 * help; a misused command line gets one line saying what is wrong and a second naming the help to
 * read (never Node's argument-parser wording, never the whole manual); and every error of the
 * catalogue (docs/errors.md) carries its code.
 */
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { errorCodes } from '../../src/errors.js'
import { ConfigDir, runCli } from '../helpers/cli.js'
import { freePort } from '../helpers/mosquitto.js'

const configs = new ConfigDir()
const dir = configs.dir
const writeConfig = (name: string, lines: string[]): string => configs.write(name, lines)

describe('--help', () => {
  it('moat --help lists every command, how to get one command\'s help, and where the docs are', async () => {
    const result = await runCli(['--help'])
    expect(result).toMatchObject({ code: 0, stderr: '' })
    for (const command of ['moat --config FILE', 'moat check --config FILE', 'moat demo', 'moat certs --out DIR', 'moat audit --target HOST:PORT', 'moat passwd FILE USER', 'moat ban list']) {
      expect(result.stdout).toContain(command)
    }
    expect(result.stdout).toContain('--group NAME')
    expect(result.stdout).toContain("'moat COMMAND --help' prints the options of one command.")
    expect(result.stdout).toContain('error codes: docs/errors.md')
  })

  it.each([
    ['check', ['--no-files', '--as USER:CLIENT', '--listener NAME', '--from ADDRESS']],
    ['demo', ['--port N', '--admin-port N']],
    ['certs', ['--out DIR', '--host NAME', '--client NAME']],
    ['audit', ['--target HOST:PORT', '--no-credentials', '--fail-on SEVERITY']],
    ['passwd', ['moat passwd FILE USER']],
    ['ban', ['--admin URL', '--token TOKEN', '--for DURATION']],
    ['sessions', ['moat sessions kick CLIENT_ID', '--client-id ID', '--address ADDRESS', '--local']],
  ])('moat %s --help prints that command\'s help and nothing of the others', async (command, expected) => {
    for (const args of [[command, '--help'], [command, '--bogus', '-h']]) {
      const result = await runCli(args)
      expect(result, args.join(' ')).toMatchObject({ code: 0, stderr: '' })
      expect(result.stdout).toMatch(new RegExp(`^Usage:\\n  moat ${command}`))
      for (const text of expected) expect(result.stdout).toContain(text)
      const others = ['check', 'demo', 'certs', 'audit', 'passwd', 'ban', 'sessions'].filter((c) => c !== command)
      for (const other of others) expect(result.stdout).not.toContain(`moat ${other} `)
    }
  })
})

describe('usage errors', () => {
  it.each([
    [['check', '--config', 'policies/example.yaml', '--port', '1'], "unknown option '--port' for 'moat check'", 'check'],
    [['audit', '--config', 'policies/example.yaml', '--bogus'], "unknown option '--bogus' for 'moat audit'", 'audit'],
    [['check', '--config'], "option '--config' needs a value", 'check'],
    [['check', '--config', '--as', 'a:b'], "option '--config' needs a value", 'check'],
    [['check', '--config', 'policies/example.yaml', '--retain=yes', '--as', 'a:b', '--publish', 't'], "option '--retain' takes no value", 'check'],
    [['demo', '--port', 'eighty'], "--port must be a port number (0-65535), got 'eighty'", 'demo'],
    [['demo', 'now'], "unexpected argument 'now'", 'demo'],
    [['certs'], "'moat certs' needs --out DIR", 'certs'],
    [['audit', '--target', 'nope'], "--target must be HOST:PORT, got 'nope'", 'audit'],
    [['audit', '--config', 'policies/example.yaml', '--tls'], '--tls goes with --target HOST:PORT', 'audit'],
    [['passwd', 'file'], "'moat passwd' needs FILE and USER", 'passwd'],
    [['ban', 'drop'], "'moat ban' takes add, remove or list", 'ban'],
    [['sessions', 'show'], "'moat sessions' takes list or kick", 'sessions'],
    [['sessions', 'kick', '--token', 'a-token-of-16-chars'], "'moat sessions kick' needs the CLIENT_ID to kick", 'sessions'],
    [['sessions', 'kick', 'c1', '--user', 'alice', '--token', 'a-token-of-16-chars'], "--user goes with 'moat sessions list'", 'sessions'],
    [['sessions', 'list', '--limit', '5000', '--token', 'a-token-of-16-chars'], '--limit must be a whole number from 1 to 1000', 'sessions'],
    [['sessions', 'list', '--all', '--cursor', 'x', '--token', 'a-token-of-16-chars'], '--all starts at the first page: give --all or --cursor, not both', 'sessions'],
    [['check', '--config', 'policies/example.yaml', '--as', 'a:b', '--publish', 't', '--from', 'somewhere'], "--from must be an IP address, like 192.0.2.7 or 2001:db8::7, got 'somewhere'", 'check'],
  ])('%j: one line in our words and the command\'s help to read (exit 2)', async (args, message, command) => {
    const result = await runCli(args)
    expect(result).toMatchObject({ code: 2, stdout: '' })
    expect(result.stderr).toBe(`moat: ${message} [MOAT_ERR_USAGE]\nrun 'moat ${command} --help' for its usage\n`)
  })

  it('an unknown command, a bare moat and a command placed after the options point at moat --help', async () => {
    expect((await runCli(['chek'])).stderr).toBe("moat: unknown command 'chek' [MOAT_ERR_USAGE]\nrun 'moat --help' for the commands\n")
    expect((await runCli([])).stderr).toBe("moat: 'moat' needs --config FILE to run the proxy, or a command [MOAT_ERR_USAGE]\nrun 'moat --help' for the commands\n")
    const late = await runCli(['--config', 'policies/example.yaml', 'check'])
    expect(late).toMatchObject({ code: 2, stderr: "moat: unexpected argument 'check' (a command comes first: moat check …) [MOAT_ERR_USAGE]\nrun 'moat --help' for the commands\n" })
  })

  it("never shows Node's argument parser's wording", async () => {
    for (const args of [['--nope'], ['check', '-z'], ['check', '--config'], ['ban', 'list', '--json=1'], ['audit', '--target']]) {
      const { stderr } = await runCli(args)
      expect(stderr.split('\n')).toHaveLength(3) // two lines and the final newline
      expect(stderr).not.toMatch(/ERR_PARSE_ARGS|Unknown option|argument missing|To specify a positional|does not take an argument/)
    }
  })
})

describe('error codes in the messages', () => {
  it('every error the command line reports names its code from docs/errors.md', async () => {
    const closed = await freePort()
    const cases: Array<[string[], keyof typeof errorCodes, RegExp]> = [
      [['check', '--config', join(dir, 'missing.yaml')], 'MOAT_ERR_CONFIG_READ', /^moat: cannot read the config \[MOAT_ERR_CONFIG_READ\]\n.*missing\.yaml cannot read the config: no such file\n$/],
      [['check', '--config', writeConfig('syntax.yaml', ['listeners: [', 'upstream: {'])], 'MOAT_ERR_CONFIG_SYNTAX', /^moat: invalid config \[MOAT_ERR_CONFIG_SYNTAX\]\n.*syntax\.yaml:\d+:\d+ YAML syntax/],
      [['check', '--config', writeConfig('invalid.yaml', ['listeners: []', 'upstream: { host: 127.0.0.1, port: 1883 }'])], 'MOAT_ERR_CONFIG_INVALID', /^moat: invalid config \[MOAT_ERR_CONFIG_INVALID\]\n.*invalid\.yaml:1:\d+ listeners: at least one listener is required\n$/],
      [['audit', '--target', `127.0.0.1:${closed}`, '--no-credentials'], 'MOAT_ERR_PROBE', new RegExp(`moat: cannot probe 127\\.0\\.0\\.1:${closed}: connection refused \\(nothing listens there\\) \\[MOAT_ERR_PROBE\\]\\n$`)],
      [['certs', '--out', join(dir, 'certs'), '--client', 'bad name'], 'MOAT_ERR_CERTS', /^moat: 'bad name' is not a usable certificate name \(letters, digits, _ \. -\) \[MOAT_ERR_CERTS\]\n$/],
      [['passwd', join(dir, 'passwd'), 'a:b'], 'MOAT_ERR_PASSWD', /^moat: a user name must not be empty nor contain ":" or a line break \[MOAT_ERR_PASSWD\]\n$/],
      [['ban', 'list', '--admin', `http://127.0.0.1:${closed}`, '--token', 'a-token-of-16-chars'], 'MOAT_ERR_BAN', /^moat: cannot reach the admin endpoint at .*: ECONNREFUSED \[MOAT_ERR_BAN\]\n$/],
      [['--config', writeConfig('listen.yaml', ['listeners: [{ name: edge, protocol: mqtt, host: 192.0.2.1, port: 1883 }]', 'upstream: { host: 127.0.0.1, port: 1 }'])], 'MOAT_ERR_LISTEN', /moat: listener 'edge' cannot listen on 192\.0\.2\.1:1883: EADDRNOTAVAIL \[MOAT_ERR_LISTEN\]\n$/],
      [['--config', writeConfig('token.yaml', ['listeners: [{ name: edge, protocol: mqtt, host: 127.0.0.1, port: 0 }]', 'upstream: { host: 127.0.0.1, port: 1 }', `admin: { port: 0, tokenFile: ${join(dir, 'no-token')} }`])], 'MOAT_ERR_CLUSTER', /moat: admin\.tokenFile: cannot read .*no-token: ENOENT \[MOAT_ERR_CLUSTER\]\n$/],
    ]
    for (const [args, code, expected] of cases) {
      const result = await runCli(args)
      expect(result.code, args.join(' ')).toBe(1)
      expect(result.stderr, args.join(' ')).toMatch(expected)
      expect(code in errorCodes).toBe(true)
    }
  })
})
