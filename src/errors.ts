/**
 * The one catalogue of Moat's errors. Each has a stable code, documented in
 * docs/errors.md (a test keeps the two in step). These are control-plane errors (config, startup,
 * command line); the data plane never throws: protocol faults are reason codes, not errors.
 */

export const errorCodes = {
  MOAT_ERR_CONFIG_READ: 'The config file cannot be read (missing, unreadable, a directory).',
  MOAT_ERR_CONFIG_SYNTAX: 'The config file is not valid YAML.',
  MOAT_ERR_CONFIG_INVALID: 'The config file is valid YAML but breaks the schema: unknown key, bad value, missing key, unsupported section.',
  MOAT_ERR_LISTEN: 'A listener or the admin endpoint cannot bind its address (port in use, address not local, permission).',
  MOAT_ERR_USAGE: 'The command line is wrong (unknown command or option, missing --config).',
  MOAT_ERR_CERTS: '`moat certs` could not make the certificates (openssl missing or failing, a bad name).',
  MOAT_ERR_PROBE: '`moat audit --target` could not probe the target (connection refused, host not found, no MQTT answer).',
  MOAT_ERR_CLUSTER: 'The shared store cannot be set up (`cluster.redis.passwordFile` unreadable, admin token file unreadable).',
  MOAT_ERR_BAN: '`moat ban` failed: the admin endpoint is unreachable, refused the token, has the ban API disabled, or rejected the ban.',
  MOAT_ERR_SESSIONS: '`moat sessions` failed: the admin endpoint is unreachable, refused the token, has the sessions API disabled, or holds no session of the client id to kick.',
  MOAT_ERR_PASSWD: '`moat passwd` could not write the entry (bad user name, empty or mismatched password, unwritable file).',
  MOAT_ERR_WORKER: 'With `workers: N`, a worker process could not start, or workers kept crashing and Moat gave up.',
} as const

export type MoatErrorCode = keyof typeof errorCodes

export class MoatError extends Error {
  readonly code: MoatErrorCode

  constructor(code: MoatErrorCode, message: string) {
    super(message)
    this.name = 'MoatError'
    this.code = code
  }
}

/** One problem in a config file: where it is and what is wrong. */
export interface ConfigIssue {
  readonly file: string
  /** Dotted key path, e.g. `listeners.0.port`; '' for the whole file. */
  readonly path: string
  /** 1-based line and column of the offending node, when known. */
  readonly line?: number
  readonly column?: number
  readonly message: string
}

export function formatConfigIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}:${issue.column ?? 1}`
  return `${where} ${issue.path === '' ? '' : issue.path + ': '}${issue.message}`
}

/** Every problem found in a config, reported together. */
export class ConfigError extends MoatError {
  readonly issues: readonly ConfigIssue[]

  constructor(code: 'MOAT_ERR_CONFIG_READ' | 'MOAT_ERR_CONFIG_SYNTAX' | 'MOAT_ERR_CONFIG_INVALID', issues: ConfigIssue[]) {
    super(code, issues.map(formatConfigIssue).join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}
