// placeholder until the config work lands (helper-1 replaces this file)
export type MoatErrorCode = 'MOAT_ERR_CONFIG_READ' | 'MOAT_ERR_CONFIG_SYNTAX' | 'MOAT_ERR_CONFIG_INVALID' | 'MOAT_ERR_LISTEN' | 'MOAT_ERR_USAGE'
export class MoatError extends Error {
  readonly code: MoatErrorCode
  constructor(code: MoatErrorCode, message: string) {
    super(message)
    this.code = code
  }
}
export class ConfigError extends MoatError {}
