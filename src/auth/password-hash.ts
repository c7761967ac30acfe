/**
 * Password hashes of a password file:
 * - `$7$ITER$SALT$HASH`: Mosquitto 2.x (`mosquitto_passwd`), PBKDF2-HMAC-SHA512, 64-byte hash;
 * - `$6$SALT$HASH`: Mosquitto 1.x, SHA512(password ‖ salt);
 * - `$scrypt$N=…,r=…,p=…$SALT$HASH`: written by `moat passwd` (memory-hard, for new files).
 * SALT and HASH are base64. Comparison is constant-time (crypto.timingSafeEqual).
 */
import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'

export type PasswordHash =
  | { readonly kind: 'sha512'; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly kind: 'pbkdf2-sha512'; readonly iterations: number; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly kind: 'scrypt'; readonly N: number; readonly r: number; readonly p: number; readonly salt: Buffer; readonly hash: Buffer }

const B64 = /^[A-Za-z0-9+/]+={0,2}$/
const MAX_ITERATIONS = 10_000_000

function b64(text: string | undefined): Buffer | null {
  if (text === undefined || !B64.test(text)) return null
  const buf = Buffer.from(text, 'base64')
  return buf.length === 0 ? null : buf
}

/** Parses one hash; null when the format is unknown or malformed (the caller says where). */
export function parsePasswordHash(text: string): PasswordHash | null {
  const parts = text.split('$')
  if (parts[0] !== '') return null
  if (parts[1] === '6' && parts.length === 4) {
    const salt = b64(parts[2])
    const hash = b64(parts[3])
    return salt && hash?.length === 64 ? { kind: 'sha512', salt, hash } : null
  }
  if (parts[1] === '7' && parts.length === 5) {
    const iterations = /^\d{1,8}$/.test(parts[2]!) ? Number(parts[2]) : 0
    const salt = b64(parts[3])
    const hash = b64(parts[4])
    if (iterations < 1 || iterations > MAX_ITERATIONS || !salt || hash?.length !== 64) return null
    return { kind: 'pbkdf2-sha512', iterations, salt, hash }
  }
  if (parts[1] === 'scrypt' && parts.length === 5) {
    const params = /^N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})$/.exec(parts[2]!)
    const salt = b64(parts[3])
    const hash = b64(parts[4])
    if (!params || !salt || !hash || hash.length < 16) return null
    const [N, r, p] = [Number(params[1]), Number(params[2]), Number(params[3])]
    // N a power of two above 1; memory 128·N·r bounded to 256 MiB.
    if (N < 2 || (N & (N - 1)) !== 0 || r < 1 || p < 1 || 128 * N * r > 256 * 1024 * 1024) return null
    return { kind: 'scrypt', N, r, p, salt, hash }
  }
  return null
}

function derive(h: PasswordHash, password: Buffer): Promise<Buffer> {
  switch (h.kind) {
    case 'sha512':
      return Promise.resolve(createHash('sha512').update(password).update(h.salt).digest())
    case 'pbkdf2-sha512':
      return new Promise((resolve, reject) => pbkdf2(password, h.salt, h.iterations, h.hash.length, 'sha512', (err, key) => err ? reject(err) : resolve(key)))
    case 'scrypt':
      return new Promise((resolve, reject) => scrypt(password, h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p, maxmem: 300 * 1024 * 1024 }, (err, key) => err ? reject(err) : resolve(key)))
  }
}

/** True when `password` matches `h`; the final comparison is constant-time. */
export async function verifyPassword(h: PasswordHash, password: Buffer): Promise<boolean> {
  const derived = await derive(h, password)
  return derived.length === h.hash.length && timingSafeEqual(derived, h.hash)
}

export const SCRYPT_DEFAULTS = { N: 16384, r: 8, p: 1 } as const

/** A new `$scrypt$` hash of `password` (for `moat passwd`). */
export async function hashPassword(password: Buffer, params: { N: number; r: number; p: number } = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(16)
  const h: PasswordHash = { kind: 'scrypt', ...params, salt, hash: Buffer.alloc(64) }
  const hash = await derive(h, password)
  return `$scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`
}
