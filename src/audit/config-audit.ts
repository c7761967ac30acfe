/**
 * `moat audit --config`: a review of a deployment's config against MQTT security practice. Each
 * rule looks at one part of the config and says, for what it finds, how bad it is, where it is,
 * what an attacker could do with it and how to fix it. It reads the config (and the password and
 * certificate files it names); it sends nothing anywhere.
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { filtersOverlap } from '../acl/filter-relations.js'
import { hasSeparator } from '../auth/client-id-binding.js'
import { parsePasswordFile } from '../auth/file.js'
import { DEFAULT_LOCKOUT } from '../config/auth-schema.js'
import type { AclRuleConfig, MoatConfig } from '../config/types.js'
import { isLoopback } from '../net/address-list.js'
import type { Finding, Report } from './finding.js'

/** A certificate that expires sooner than this is a finding. */
const EXPIRY_WARNING_MS = 30 * 24 * 3600 * 1000
/** PBKDF2 iterations below this are weak (Mosquitto 2's default of 101 is far below OWASP's advice). */
const MIN_PBKDF2_ITERATIONS = 10_000
const WEAK_CIPHER_PARTS = ['RC4', 'DES', 'NULL', 'EXPORT', 'EXP-', 'MD5', 'ADH', 'AECDH', 'LOW', 'SSLV3']

/** Whether an OpenSSL cipher list lets in a broken suite (entries starting with ! or - exclude, they are fine). */
function allowsWeakCipher(list: string): boolean {
  return list.split(/[:,\s]+/).some((entry) => entry !== '' && !entry.startsWith('!') && !entry.startsWith('-') && WEAK_CIPHER_PARTS.some((part) => entry.toUpperCase().includes(part)))
}

function listenerFindings(config: MoatConfig, out: Finding[]): void {
  const passwordsOnly = !config.auth.backends.some((b) => b.type === 'certificate')
  config.listeners.forEach((l, i) => {
    const where = `listeners.${i} (${l.name}, ${l.protocol} ${l.host}:${l.port})`
    const exposed = !isLoopback(l.host)
    if ((l.protocol === 'mqtt' || l.protocol === 'ws') && exposed) {
      out.push({
        id: 'plaintext-listener', severity: 'high', where,
        title: 'Plain-text listener on a network address',
        risk: 'anyone on the path reads user names, passwords, tokens and every message, and can inject packets into sessions',
        fix: `use protocol ${l.protocol === 'ws' ? 'wss' : 'mqtts'} with a certificate, or bind this listener to 127.0.0.1`,
      })
    }
    const tls = l.tls ?? null
    if (tls === null) return
    if (tls.ciphers !== null && allowsWeakCipher(tls.ciphers)) {
      out.push({
        id: 'weak-tls-ciphers', severity: 'high', where: `${where} tls.ciphers`,
        title: 'Weak TLS cipher suites allowed',
        risk: 'a network attacker can downgrade the connection to a cipher it can break, and read or alter the traffic',
        fix: 'remove the cipher list (Node\'s default is sound) or use only ECDHE with AES-GCM or ChaCha20-Poly1305',
      })
    }
    if (exposed && tls.clientCert === 'none' && passwordsOnly) {
      out.push({
        id: 'no-client-certificates', severity: 'low', where: `${where} tls.clientCert`,
        title: 'A network-facing listener without client certificates',
        risk: 'a stolen or guessed password is all it takes to connect; the TLS session itself proves nothing about the device',
        fix: 'set tls.clientCert: required with a ca (and crl) for device fleets, and the certificate auth backend',
      })
    }
    for (const [key, file] of [['tls.cert', tls.cert], ...tls.sni.map((s, j) => [`tls.sni.${j}.cert`, s.cert] as const)] as const) {
      certificateExpiry(`${where} ${key}`, file, out)
    }
  })
}

function certificateExpiry(where: string, file: string, out: Finding[]): void {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(readFileSync(file))
  } catch {
    return // the loader already refused unreadable certificates
  }
  const left = Date.parse(cert.validTo) - Date.now()
  if (left > EXPIRY_WARNING_MS) return
  out.push({
    id: left <= 0 ? 'certificate-expired' : 'certificate-expiring', severity: left <= 0 ? 'critical' : 'high', where,
    title: left <= 0 ? `Certificate expired on ${cert.validTo}` : `Certificate expires within 30 days (${cert.validTo})`,
    risk: 'clients refuse the server (an outage), and operators under pressure tend to switch verification off',
    fix: 'renew the certificate and reload Moat (SIGHUP: established sessions go on)',
  })
}

/** No backend, no anonymous access, and no credentials passed on to the broker: every client is refused. */
function nobodyGetsIn(config: MoatConfig): boolean {
  const auth = config.auth
  return auth.backends.length === 0 && !auth.anonymous && auth.unknownCredentials === 'refuse'
}

function authFindings(config: MoatConfig, out: Finding[]): void {
  const auth = config.auth
  if (auth.anonymous) {
    out.push({
      id: 'anonymous-access', severity: 'high', where: 'auth.anonymous',
      title: 'Anonymous clients are admitted',
      risk: 'anyone who can reach a listener connects without credentials and gets whatever the ACL gives everybody',
      fix: 'set auth.anonymous: false and give each device credentials (password file, JWT or client certificate)',
    })
  }
  if (auth.unknownCredentials === 'broker') {
    out.push({
      id: 'credentials-checked-by-broker', severity: 'medium', where: 'auth.unknownCredentials',
      title: 'Credentials no Moat backend knows are passed to the broker, which decides',
      risk: 'Moat does not authenticate those clients: if the broker admits any credentials (allow_anonymous, no password file or auth plugin), so does Moat; the lockout never sees the broker\'s refusals, and per-user rules trust the name the client sent until the broker accepts it',
      fix: 'keep authentication on in the broker (password_file, auth plugin or dynamic security), or set auth.unknownCredentials: refuse and give Moat a backend that knows the users',
    })
  }
  if (nobodyGetsIn(config)) {
    out.push({
      id: 'refuses-everyone', severity: 'info', where: 'auth',
      title: 'No auth backend: every client is refused',
      risk: 'none (fail closed), but the proxy lets nobody through',
      fix: 'add a backend under auth.backends',
    })
  }
  const usesPasswords = auth.backends.some((b) => b.type !== 'certificate')
  if (usesPasswords && auth.lockout === null) {
    out.push({
      id: 'no-lockout', severity: 'medium', where: 'auth.lockout',
      title: 'No brute-force lockout',
      risk: 'an attacker can try passwords as fast as the connection limits allow',
      fix: `remove \`lockout: false\` (the default bans after ${DEFAULT_LOCKOUT.maxFailures} failures in ${DEFAULT_LOCKOUT.window / 1000} s)`,
    })
  }
  auth.backends.forEach((b, i) => {
    if (b.type === 'http') {
      const url = new URL(b.url)
      if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
        out.push({
          id: 'auth-over-plaintext', severity: 'medium', where: `auth.backends.${i}.url`,
          title: 'Credentials sent to the auth service in clear',
          risk: 'every device password crosses the network unencrypted on its way to the auth service',
          fix: 'use an https:// URL (or run the service on this host)',
        })
      }
    }
    if (b.type === 'file') passwordFileFindings(b.path, `auth.backends.${i}.path`, out)
  })
}

function passwordFileFindings(path: string, where: string, out: Finding[]): void {
  let users
  try {
    users = parsePasswordFile(readFileSync(path, 'utf8'), (line, message) => new Error(`${line}: ${message}`))
  } catch {
    return // the loader already refused an unreadable or malformed file
  }
  const sha512: string[] = []
  const fewIterations: string[] = []
  for (const [user, hash] of users) {
    if (hash.kind === 'sha512') sha512.push(user)
    else if (hash.kind === 'pbkdf2-sha512' && hash.iterations < MIN_PBKDF2_ITERATIONS) fewIterations.push(user)
  }
  const list = (users: string[]): string => users.slice(0, 5).join(', ') + (users.length > 5 ? ` and ${users.length - 5} more` : '')
  if (sha512.length > 0) {
    out.push({
      id: 'weak-password-hash', severity: 'medium', where: `${where} (${path})`,
      title: `${sha512.length} password(s) stored as single-round SHA-512 ($6$): ${list(sha512)}`,
      risk: 'whoever gets the file can test billions of guesses per second against these hashes',
      fix: 'set these passwords again with `moat passwd FILE USER` (scrypt) or Mosquitto 2\'s mosquitto_passwd',
    })
  }
  if (fewIterations.length > 0) {
    out.push({
      id: 'few-hash-iterations', severity: 'low', where: `${where} (${path})`,
      title: `${fewIterations.length} password(s) hashed with fewer than ${MIN_PBKDF2_ITERATIONS} PBKDF2 iterations: ${list(fewIterations)}`,
      risk: 'a stolen file is cheap to attack (Mosquitto 2 uses 101 iterations by default)',
      // Mosquitto 2.0's mosquitto_passwd takes -I although its -h does not list it.
      fix: `set these passwords again with \`moat passwd FILE USER\` (scrypt), or with \`mosquitto_passwd -I ${MIN_PBKDF2_ITERATIONS * 10} FILE USER\` (Mosquitto 2.0 takes -I, the iteration count, though \`mosquitto_passwd -h\` does not list it)`,
    })
  }
}

/** A rule that applies to every client (no user, group, listener or source selector). */
function forEveryone(r: AclRuleConfig): boolean {
  return r.users === null && r.groups === null && r.listeners === null && r.sources === null && r.anonymous !== true
}

/** The part of a placeholder pattern before its first placeholder level, e.g. `devices` of `devices/{client_id}/#`. */
function ownTreePrefix(topic: string): string | null {
  const levels = topic.split('/')
  const at = levels.findIndex((l) => l.includes('{'))
  return at <= 0 ? null : levels.slice(0, at).join('/')
}

function aclFindings(config: MoatConfig, out: Finding[]): void {
  const acl = config.acl
  if (acl === null) {
    out.push({
      id: 'no-acl', severity: 'high', where: 'acl',
      title: 'No topic allow-list: every client may publish and subscribe to every topic',
      risk: 'any device can read every other device\'s data (`#`) and send commands on any topic',
      fix: 'add an `acl` section: each device its own tree (devices/{client_id}/#), then `deny: all, topic: "#"`',
    })
    return
  }
  const rules = acl.rules
  const first = rules[0]
  if (first !== undefined && first.effect === 'allow' && first.publish && first.subscribe && first.topic === '#' && forEveryone(first)) {
    out.push({
      id: 'allows-everything', severity: 'critical', where: `acl (${first.name})`,
      title: 'The first ACL rule allows everything to everyone',
      risk: 'the ACL protects nothing: every client reads and writes every topic',
      fix: 'start with narrow allow rules (own trees with placeholders) and end with `deny: all, topic: "#"`',
    })
    return
  }
  const prefixes = [...new Set(rules.filter((r) => r.effect === 'allow').map((r) => ownTreePrefix(r.topic)).filter((p): p is string => p !== null))]
  rules.forEach((r, i) => {
    if (r.effect !== 'allow' || !r.subscribe || !forEveryone(r) || r.topic.includes('{')) return
    const where = `acl.rules.${i} (${r.name})`
    if (r.topic === '#' || r.topic.startsWith('#') || r.topic.startsWith('+')) {
      out.push({
        id: 'acl-read-everything', severity: 'high', where,
        title: `Every client may subscribe to '${r.topic}'`,
        risk: 'any device (or a stolen credential) reads the traffic of the whole fleet',
        fix: 'limit the rule to administrators (users:/groups:) or narrow its topic',
      })
      return
    }
    if (r.topic.startsWith('$SYS')) {
      out.push({
        id: 'acl-read-sys', severity: 'medium', where,
        title: `Every client may subscribe to '${r.topic}'`,
        risk: 'broker internals (client counts, versions, load) help an attacker plan',
        fix: 'give $SYS to operators only (users: [...] or groups: [...])',
      })
      return
    }
    const reached = prefixes.find((p) => filtersOverlap(r.topic, `${p}/moat-audit-other-device/#`))
    if (reached !== undefined) {
      out.push({
        id: 'acl-read-other-devices', severity: 'high', where,
        title: `Every client may subscribe to '${r.topic}', which reaches other devices' trees under '${reached}/'`,
        risk: 'a device reads the data (and sees the commands) of every other device',
        fix: `drop the rule or restrict it to administrators; devices read only ${reached}/{client_id}/…`,
      })
    }
  })
}

/**
 * `{client_id}` in an allow rule names a device only when the client id is bound to the identity
 * that authenticated; under `username-prefix` a user name holding a separator is refused at
 * CONNECT (checks/auth.ts), so a bound id has one owner and only the password files are worth a look.
 */
function clientIdFindings(config: MoatConfig, out: Finding[]): void {
  const auth = config.auth
  if (nobodyGetsIn(config)) return
  const rule = config.acl?.rules.findIndex((r) => r.effect === 'allow' && r.topic.includes('{client_id}')) ?? -1
  if (rule < 0) return
  const c = auth.clientId
  const name = config.acl!.rules[rule]!.name
  if (c.bind === 'none') {
    out.push({
      id: 'client-id-unbound', severity: 'high', where: `auth.clientId.bind (with acl.rules.${rule} (${name}))`,
      title: 'ACL rules name {client_id}, but any user may connect with any client id',
      risk: 'a client with valid credentials connects with another device\'s client id: it reads and writes that device\'s topics and resumes its persistent session, queued messages included',
      fix: 'set auth.clientId.bind: username-prefix (ids like dev1:main) or username, or write the rules with {username} or {cert.cn}',
    })
    return
  }
  if (c.bind !== 'username-prefix') return
  auth.backends.forEach((b, i) => {
    if (b.type !== 'file') return
    let users: string[]
    try {
      users = [...parsePasswordFile(readFileSync(b.path, 'utf8'), (line, message) => new Error(`${line}: ${message}`)).keys()]
    } catch {
      return // the loader already refused an unreadable or malformed file
    }
    const holding = users.filter((u) => hasSeparator(u, c.separator))
    if (holding.length === 0) return
    out.push({
      id: 'client-id-separator-in-username', severity: 'info', where: `auth.backends.${i}.path (${b.path})`,
      title: `${holding.length} user name(s) hold a client-id separator (${JSON.stringify(c.separator)}) and are refused under bind: username-prefix: ${holding.slice(0, 5).join(', ')}${holding.length > 5 ? ` and ${holding.length - 5} more` : ''}`,
      risk: 'none (fail closed: such a user would share client ids with a shorter user name), but these users cannot connect',
      fix: 'choose auth.clientId.separator characters these names do not hold, or rename the users',
    })
  })
}

function limitFindings(config: MoatConfig, out: Finding[]): void {
  const l = config.limits
  if (l.messageRate === null && l.packetRate === null && l.byteRate === null && l.perUsername === null) {
    out.push({
      id: 'no-rate-limit', severity: 'medium', where: 'limits',
      title: 'No message, packet or byte rate limit',
      risk: 'one client (or one stolen credential) can flood the broker and every subscriber with as much as TCP carries',
      fix: 'set limits.messageRate (e.g. 100/s) and limits.packetRate, with onExcess: throttle',
    })
  }
  if (l.connections.rate === null && l.connections.perAddressRate === null && l.connections.perAddress === null) {
    out.push({
      id: 'no-connection-limit', severity: 'low', where: 'limits.connections',
      title: 'No connection rate or per-address limit',
      risk: 'a reconnect storm (or an attacker) opens connections as fast as it can, each costing a broker session',
      fix: 'set limits.connections.perAddressRate (e.g. 20/s) and perAddress',
    })
  }
  if (l.maxPayload === null && l.payload.length === 0) {
    out.push({
      id: 'no-payload-cap', severity: 'low', where: 'limits.maxPayload',
      title: `No payload cap below the packet size (${l.maxPacketSize} bytes)`,
      risk: 'any client may send payloads as large as the packet cap to any topic it may write, and subscribers must take them',
      fix: 'set limits.maxPayload (e.g. 16KiB) and raise it per topic with limits.payload where needed',
    })
  }
}

function edgeFindings(config: MoatConfig, out: Finding[]): void {
  if (config.admin !== null && !isLoopback(config.admin.host)) {
    out.push({
      id: 'admin-exposed', severity: 'high', where: 'admin.host',
      title: `The admin endpoint listens on ${config.admin.host}`,
      risk: '/metrics has no authentication: anyone who reaches it learns traffic volumes, user counts and refusal patterns',
      fix: 'bind admin to 127.0.0.1 (or a management network behind a firewall)',
    })
  }
  const up = config.upstream
  const tls = up.tls ?? null
  if (tls === null && !isLoopback(up.host)) {
    out.push({
      id: 'upstream-plaintext', severity: 'medium', where: 'upstream',
      title: `Moat reaches the broker ${up.host}:${up.port} in clear`,
      risk: 'everything the devices send crosses the network between Moat and the broker unencrypted',
      fix: 'set upstream.tls (with the broker\'s CA), or run Moat next to the broker',
    })
  }
  if (tls?.insecure === true) {
    out.push({
      id: 'upstream-insecure', severity: 'high', where: 'upstream.tls.insecure',
      title: 'The broker\'s certificate is not verified',
      risk: 'anyone on the path can impersonate the broker and read or alter all traffic',
      fix: 'remove insecure and give upstream.tls.ca',
    })
  }
}

export function auditConfig(config: MoatConfig, subject: string): Report {
  const findings: Finding[] = []
  listenerFindings(config, findings)
  authFindings(config, findings)
  aclFindings(config, findings)
  clientIdFindings(config, findings)
  limitFindings(config, findings)
  edgeFindings(config, findings)
  return { subject, findings }
}
