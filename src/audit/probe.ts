/**
 * `moat audit --target HOST:PORT`: an active probe of a broker (or of Moat) the operator names.
 * It talks only to that address, over at most ten short sequential connections (anonymous
 * CONNECT, up to four default credentials, one client-id check, one oversized-packet check, and
 * with --tls two pinned-version handshakes), every step bounded by `timeoutMs`, everything closed
 * at the end. It writes one non-retained QoS 1 message to a fresh `moat-audit/<random>` topic and
 * nothing retained, so it leaves nothing behind on the broker.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import type { IConnackPacket, IPublishPacket, ISubackPacket } from 'mqtt-packet'
import type { Finding, Report } from './finding.js'
import { OpenError, ProbeConnection, type Endpoint } from './probe-connection.js'
import { DEFAULT_LOCKOUT } from '../config/auth-schema.js'
import { MoatError } from '../errors.js'
import { isLoopback } from '../net/address-list.js'

/** Where and how to probe: the target's address, TLS settings and the timeout of every step. */
export interface ProbeOptions extends Endpoint {
  /** Whether to try the default credentials when anonymous access is refused (each refusal is a failed login). */
  readonly credentials?: boolean
}

/**
 * Tried in order only when anonymous access is refused; the probe stops at the first accepted.
 * Each refusal counts towards the target's lockout of the operator's address (a refused anonymous
 * CONNECT does not: there were no credentials), so the list is short enough that two runs in a
 * row stay under Moat's default lockout, `DEFAULT_LOCKOUT.maxFailures` in its window.
 */
export const defaultCredentials: readonly (readonly [string, string])[] = [
  ['admin', 'admin'],
  ['admin', 'password'],
  ['guest', 'guest'],
  ['mosquitto', 'mosquitto'],
]

/** What the probe will try, said before it starts (the CLI prints it on stderr). */
export function probePlan(options: ProbeOptions): string {
  const where = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`
  if (options.credentials === false) return `moat audit: probing ${where} without credentials (--no-credentials): one anonymous login, no failed login to count towards a lockout`
  return `moat audit: probing ${where}: one anonymous login, then, if it is refused, up to ${defaultCredentials.length} default credentials ` +
    `(${defaultCredentials.map(([u, p]) => `${u}/${p}`).join(', ')}); each refused one counts towards the target's lockout of your address ` +
    `(Moat's default: ${DEFAULT_LOCKOUT.maxFailures} within ${DEFAULT_LOCKOUT.window / 1000} s); --no-credentials skips them`
}

/** How long the oversized-packet check waits for the target to close the connection. */
const OVERSIZE_WINDOW_MS = 2000
/** The largest Remaining Length MQTT can encode (256 MiB - 1); the probe sends only a few bytes of it. */
const OVERSIZE_DECLARED = 268_435_455

interface Credentials { readonly username: string; readonly password: string }

interface Attempt {
  /** The CONNACK return code, or null when the target closed or stayed silent instead. */
  readonly returnCode: number | null
  readonly conn: ProbeConnection
}

export async function probeTarget(options: ProbeOptions): Promise<Report> {
  // --ca names a PEM file; the connections get its contents.
  const ep: Endpoint = { ...options, ca: options.ca === null ? null : readCa(options.ca) }
  const where = `${options.tls ? 'mqtts' : 'mqtt'}://${net.isIPv6(options.host) ? `[${options.host}]` : options.host}:${options.port}`
  const findings: Finding[] = []
  const add = (f: Omit<Finding, 'where'>): void => { findings.push({ ...f, where }) }
  const nonce = randomBytes(6).toString('hex')

  // 1. Anonymous CONNECT. It also shows the target is reachable and speaks MQTT.
  const anonymous = await connectMqtt(ep, `moat-audit-${nonce}`, null)
  let session: Attempt | null = null
  let sessionCredentials: Credentials | null = null
  let answered = anonymous.returnCode !== null
  if (anonymous.returnCode === 0) {
    session = anonymous
    add({
      id: 'anonymous-access',
      severity: 'critical',
      title: 'Anonymous clients are accepted',
      risk: 'Anyone who can reach the port connects without credentials and can read and write whatever the broker allows any client.',
      fix: 'Require authentication (Mosquitto: allow_anonymous false with a password_file; Moat: auth.anonymous false with an auth backend).',
    })
  } else {
    const silent = anonymous.returnCode === null && !anonymous.conn.closed
    anonymous.conn.destroy()
    if (silent) throw notMqtt(where, options)
    // 2. A short list of default credentials, stopping at the first accepted.
    for (const [username, password] of options.credentials === false ? [] : defaultCredentials) {
      const attempt = await connectMqtt(ep, `moat-audit-${nonce}`, { username, password })
      if (attempt.returnCode !== null) answered = true
      if (attempt.returnCode === 0) {
        session = attempt
        sessionCredentials = { username, password }
        add({
          id: 'default-credentials',
          severity: 'critical',
          title: `Default credentials are accepted (${username}/${password})`,
          risk: 'Anyone who tries the well-known default user names and passwords gets in, as that user.',
          fix: `Remove the user '${username}' or give it a strong unique password.`,
        })
        break
      }
      attempt.conn.destroy()
    }
  }
  if (!answered) throw notMqtt(where, options)

  try {
    // 3 and 4. What the session that got in may read and write.
    if (session !== null) {
      await probeSession(session.conn, nonce, options.timeoutMs, add)
      session.conn.close()
      await session.conn.closedWithin(options.timeoutMs)
    } else {
      add({
        id: 'no-session',
        severity: 'info',
        title: 'No session obtained: subscribe, publish and client-id checks were not run',
        risk: options.credentials === false
          ? 'None found by this probe: anonymous access was refused, and default credentials were not tried (--no-credentials).'
          : 'None found by this probe: neither anonymous access nor the built-in default credentials were accepted.',
        fix: 'Nothing to do; to check what a real user may do, review the ACL (moat audit --config).',
      })
    }

    // 5. Wildcards in the client id (CVE-2017-7650 class), with whatever credentials got in.
    if (session !== null) {
      const wild = await connectMqtt(ep, 'probe+#', sessionCredentials)
      if (wild.returnCode === 0) {
        add({
          id: 'client-id-wildcards',
          severity: 'medium',
          title: "A client id containing MQTT wildcards ('probe+#') is accepted",
          risk: 'Where ACL patterns substitute the client id (%c), a client id with + or # turns into a wildcard and can read or write other clients\' topics (CVE-2017-7650 class).',
          fix: "Refuse client ids containing +, # or / (Moat: auth.clientId.pattern, e.g. '^[A-Za-z0-9_.:-]+$'), and keep the broker patched.",
        })
        wild.conn.close()
        await wild.conn.closedWithin(options.timeoutMs)
      } else {
        wild.conn.destroy()
      }
    }

    // 6. An oversized packet: declare 256 MiB, send a few bytes, see whether the target hangs up.
    await probeOversize(ep, nonce, session === null ? null : { credentials: sessionCredentials }, add)

    // 7. Transport.
    if (options.tls) await probeTls(ep, add)
    else if (isLoopback(options.host)) {
      add({
        id: 'plaintext-listener',
        severity: 'info',
        title: 'Plain MQTT (no TLS) on a loopback address',
        risk: 'Only processes on this host can reach it; credentials and messages are not encrypted.',
        fix: 'Fine for a broker behind a local proxy; use TLS for any listener reachable from the network.',
      })
    } else {
      add({
        id: 'plaintext-listener',
        severity: 'medium',
        title: 'Plain MQTT (no TLS) on a network address',
        risk: 'Credentials and messages cross the network in clear: anyone on the path can read them and take over sessions.',
        fix: 'Serve MQTT over TLS (port 8883) and close the plain port, or bind it to loopback behind a TLS proxy.',
      })
    }
  } finally {
    session?.conn.destroy()
  }
  return { subject: where, findings }
}

/** Why the probe could not run (target unreachable, not MQTT, CA file unreadable): the CLI prints the message and exits 1. */
function probeError(message: string): Error {
  return new MoatError('MOAT_ERR_PROBE', message)
}

function notMqtt(where: string, options: ProbeOptions): Error {
  return probeError(`${where} never answered an MQTT CONNECT with a CONNACK within ${options.timeoutMs} ms: is it an MQTT 3.1.1/5 listener${options.tls ? '' : ' (does it need --tls?)'}`)
}

/** CONNECT (MQTT 3.1.1, clean session) and wait for the CONNACK. Throws only when the socket cannot open. */
async function connectMqtt(ep: Endpoint, clientId: string, credentials: Credentials | null): Promise<Attempt> {
  let conn: ProbeConnection
  try {
    conn = await ProbeConnection.open(ep)
  } catch (err) {
    const e = err as OpenError
    const where = `${ep.host}:${ep.port}`
    if (e.code === 'ECONNREFUSED') throw probeError(`cannot probe ${where}: connection refused (nothing listens there)`)
    if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') throw probeError(`cannot probe ${where}: host '${ep.host}' not found`)
    if (e.code === 'ETIMEDOUT') throw probeError(`cannot probe ${where}: no answer within ${ep.timeoutMs} ms (unreachable or filtered)`)
    throw probeError(`cannot probe ${where}${ep.tls ? ' over TLS' : ''}: ${e.message}${e.code === undefined ? '' : ` (${e.code})`}`)
  }
  conn.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    clientId,
    ...(credentials === null ? {} : { username: credentials.username, password: Buffer.from(credentials.password) }),
  })
  const connack = await conn.next((p) => p.cmd === 'connack', ep.timeoutMs) as IConnackPacket | null
  return { conn, returnCode: connack === null ? null : connack.returnCode ?? 0 }
}

async function subscribe(conn: ProbeConnection, messageId: number, topic: string, timeoutMs: number): Promise<boolean> {
  conn.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 1 }] })
  const suback = await conn.next((p) => p.cmd === 'suback' && p.messageId === messageId, timeoutMs) as ISubackPacket | null
  const code = suback?.granted[0]
  return typeof code === 'number' && code < 0x80
}

async function probeSession(conn: ProbeConnection, nonce: string, timeoutMs: number, add: (f: Omit<Finding, 'where'>) => void): Promise<void> {
  const all = await subscribe(conn, 1, '#', timeoutMs)
  if (all) {
    add({
      id: 'subscribe-all',
      severity: 'high',
      title: "Subscribing to '#' is granted",
      risk: 'A client reads every message every device and service publishes (telemetry, commands, credentials in payloads).',
      fix: "Deny '#' and other broad filters in the ACL; allow each client only its own topics.",
    })
  }
  const sys = await subscribe(conn, 2, '$SYS/#', timeoutMs)
  if (sys) {
    add({
      id: 'subscribe-sys',
      severity: 'medium',
      title: "Subscribing to '$SYS/#' is granted",
      risk: 'A client reads broker internals: version, client counts, load, which helps plan an attack.',
      fix: "Deny '$SYS/#' to ordinary clients (Moat ACL, or the broker's own ACL / sys_interval 0).",
    })
  }
  // A fresh topic: nothing else uses it. Non-retained QoS 1, so the broker keeps nothing once it is
  // delivered; the probe never publishes retained, so there is nothing to clear afterwards.
  const topic = `moat-audit/${nonce}`
  const own = await subscribe(conn, 3, topic, timeoutMs)
  const payload = Buffer.from(`moat audit probe ${nonce}`)
  conn.send({ cmd: 'publish', topic, payload, qos: 1, messageId: 4, retain: false, dup: false })
  const echo = (all || own)
    ? await conn.next((p) => p.cmd === 'publish' && (p as IPublishPacket).topic === topic, timeoutMs) as IPublishPacket | null
    : null
  if (echo !== null) {
    add({
      id: 'publish-anywhere',
      severity: 'high',
      title: `Publishing to an arbitrary topic is accepted (${topic} came back)`,
      risk: 'A client can write to topics it has no business in: inject commands to devices, forge telemetry.',
      fix: 'Allow each client to publish only to its own topics in the ACL; deny the rest.',
    })
  } else if (!all && !own) {
    const acked = await conn.next((p) => p.cmd === 'puback' && p.messageId === 4, timeoutMs)
    if (acked !== null) {
      add({
        id: 'publish-unverified',
        severity: 'info',
        title: `A publish to ${topic} was acknowledged but could not be read back`,
        risk: 'Unknown: no subscription was granted to check whether the message was delivered.',
        fix: 'Check the ACL (moat audit --config) for which topics clients may publish to.',
      })
    }
  }
  conn.send({ cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['#', '$SYS/#', topic] })
  await conn.next((p) => p.cmd === 'unsuback' && p.messageId === 5, timeoutMs)
}

/**
 * With a session: CONNECT, then a PUBLISH header declaring 256 MiB and a few bytes of it. Without
 * one: a CONNECT header declaring 256 MiB (what an unauthenticated client can do). Never sends more.
 */
async function probeOversize(ep: Endpoint, nonce: string, session: { credentials: Credentials | null } | null, add: (f: Omit<Finding, 'where'>) => void): Promise<void> {
  let conn: ProbeConnection
  let stage: string
  if (session !== null) {
    const attempt = await connectMqtt(ep, `moat-audit-${nonce}-big`, session.credentials)
    if (attempt.returnCode !== 0) {
      attempt.conn.destroy()
      return
    }
    conn = attempt.conn
    stage = 'PUBLISH after CONNECT'
    const topic = Buffer.from(`moat-audit/${nonce}/big`)
    const len = Buffer.alloc(2)
    len.writeUInt16BE(topic.length)
    conn.writeRaw(Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), len, topic, Buffer.alloc(1024)]))
  } else {
    const opened = await ProbeConnection.open(ep).catch(() => null)
    if (opened === null) return
    conn = opened
    stage = 'CONNECT before authentication'
    conn.writeRaw(Buffer.concat([Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04]), Buffer.from('MQTT'), Buffer.from([0x04, 0x02, 0x00, 0x1e]), Buffer.alloc(1024)]))
  }
  const closed = await conn.closedWithin(Math.min(OVERSIZE_WINDOW_MS, ep.timeoutMs))
  conn.destroy()
  if (!closed) {
    add({
      id: 'oversized-packet',
      severity: 'medium',
      title: `A ${stage} declaring ${OVERSIZE_DECLARED} bytes is not refused at once`,
      risk: 'A client can make the broker wait for (and buffer) a huge packet: a few such connections exhaust its memory.',
      fix: 'Cap the packet size (Mosquitto: max_packet_size; Moat: limits.maxPacketSize, enforced from the header).',
    })
  }
}

/** Which TLS versions the target accepts: a handshake per old version with the version pinned. */
async function probeTls(ep: Endpoint, add: (f: Omit<Finding, 'where'>) => void): Promise<void> {
  const first = await ProbeConnection.open(ep).catch(() => null)
  if (first !== null) {
    if (!first.authorized) {
      add({
        id: 'tls-certificate-untrusted',
        severity: 'low',
        title: `The server certificate does not verify (${first.authorizationError ?? 'unknown reason'})`,
        risk: 'Clients that verify refuse it; clients told to skip verification can be intercepted by anyone on the path.',
        fix: 'Use a certificate from a CA the clients trust, matching the host name (or run the probe with --ca / --servername).',
      })
    }
    first.destroy()
  }
  const untestable: string[] = []
  for (const version of ['TLSv1', 'TLSv1.1'] as const) {
    try {
      const conn = await ProbeConnection.open(ep, { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' })
      conn.destroy()
      add({
        id: version === 'TLSv1' ? 'tls-1.0-accepted' : 'tls-1.1-accepted',
        severity: 'high',
        title: `${version === 'TLSv1' ? 'TLS 1.0' : 'TLS 1.1'} is accepted`,
        risk: 'Deprecated protocol versions with known weaknesses (BEAST, weak ciphers, no AEAD): a client can be downgraded and its traffic attacked.',
        fix: 'Accept TLS 1.2 and 1.3 only (Mosquitto: tls_version tlsv1.2; Moat listeners: tls.minVersion, TLSv1.2 by default and never lower).',
      })
    } catch (err) {
      // Refused by the server: an alert, a version mismatch or a reset after our ClientHello. Not
      // offered at all by this host's OpenSSL: the error comes before anything was sent.
      const e = err as OpenError
      if (e.code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE' || /no protocols available|no ciphers available/i.test(e.message)) untestable.push(version)
    }
  }
  if (untestable.length > 0) {
    add({
      id: 'tls-old-versions-untested',
      severity: 'info',
      title: `Could not test ${untestable.map((v) => (v === 'TLSv1' ? 'TLS 1.0' : 'TLS 1.1')).join(' and ')}`,
      risk: "Unknown: this host's OpenSSL cannot offer those versions, so whether the target accepts them was not checked.",
      fix: 'Run the probe from a host whose OpenSSL still offers TLS 1.0/1.1, or check the target with openssl s_client -tls1.',
    })
  }
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw probeError(`cannot read the CA file ${file}: ${(err as Error).message}`)
  }
}

