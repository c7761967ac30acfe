/**
 * `auth.clientId.bind`: whether a client id belongs to the user name that authenticated.
 *
 * - `username`: the client id is the user name.
 * - `username-prefix`: the client id is the user name, or the user name followed by one of the
 *   `separator` characters and anything after it (`dev1` owns `dev1` and `dev1:sensor`, never
 *   `dev10`). A user name that holds a separator character is refused under this binding: with
 *   users `dev1` and `dev1:x`, the id `dev1:x` would belong to both. Without separators in user
 *   names, the owner of an id is the part before its first separator, so one id has one owner.
 *
 * An empty client id (the broker assigns one) is exempt; an anonymous client owns no client id.
 */
import type { ClientIdConfig } from '../config/types.js'

export function clientIdBound(bind: ClientIdConfig['bind'], separators: string, username: string | null, clientId: string): boolean {
  if (bind === 'none' || clientId === '') return true
  if (username === null) return false
  if (bind === 'username') return clientId === username
  if (hasSeparator(username, separators)) return false
  if (clientId.length === username.length) return clientId === username
  return clientId.length > username.length && separators.includes(clientId[username.length]!) && clientId.startsWith(username)
}

/** Whether `name` holds one of the separator characters (such a user name owns no client id under `username-prefix`). */
export function hasSeparator(name: string, separators: string): boolean {
  for (const c of separators) if (name.includes(c)) return true
  return false
}
