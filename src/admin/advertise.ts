/**
 * The admin URL an instance gives the fleet's directory, so the other instances can ask it for its
 * sessions: `admin.advertise` when set, else the address the endpoint is bound to. A wildcard bind
 * (0.0.0.0, ::) names no address another machine can use: then nothing is advertised, with a
 * warning, and the fleet view reports this instance as not asked.
 */
import net from 'node:net'
import type { AdminConfig } from '../config/types.js'
import type { InstanceDirectory } from '../fleet/instance-directory.js'
import type { Logger } from '../log/logger.js'

const WILDCARDS = new Set(['0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0', ''])

export function advertisedUrl(config: AdminConfig, bound: { host: string; port: number }): string | null {
  if (config.advertise != null) return config.advertise
  if (WILDCARDS.has(config.host) || WILDCARDS.has(bound.host)) return null
  const host = net.isIPv6(bound.host) ? `[${bound.host}]` : bound.host
  return `http://${host}:${bound.port}`
}

/** Writes this instance's URL into the directory, or warns why it cannot. */
export function advertise(directory: InstanceDirectory, config: AdminConfig, bound: { host: string; port: number }, logger: Logger): void {
  const url = advertisedUrl(config, bound)
  if (url === null) {
    logger.warn({ event: 'admin_not_advertised', host: config.host, instance: directory.instanceId },
      `admin.host is ${config.host}, an address other instances cannot use: set admin.advertise (e.g. http://10.0.0.5:${bound.port}) so the fleet's sessions view can ask this instance`)
    return
  }
  directory.advertise(url)
  logger.info({ event: 'admin_advertised', url, instance: directory.instanceId }, 'admin endpoint advertised to the fleet')
}
