/** `moat audit --config`: a review of a deployment's config against MQTT security practice. Being written. */
import type { MoatConfig } from '../config/types.js'
import type { Report } from './finding.js'

export function auditConfig(config: MoatConfig, subject: string): Report {
  return { subject, findings: config === null ? [] : [] }
}
