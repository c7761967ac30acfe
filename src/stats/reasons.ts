/**
 * Every reason a packet can be refused or a client closed for: one bounded list, shared by logs and
 * by the `reason` label of metrics (never a client id or a topic). Checks added later extend it.
 */
export const denyReasons = [
  'ok',
  // protocol validation (checks/protocol.ts and the session's framing rules)
  'packet_too_large',
  'malformed_packet',
  'protocol_error',
  'first_packet_not_connect',
  'duplicate_connect',
  'reserved_flags',
  'forbidden_packet_type',
  'unsupported_protocol_version',
  'invalid_protocol_name',
  'invalid_client_id',
  'invalid_topic',
  'invalid_topic_filter',
  'topic_alias_invalid',
  'connect_timeout',
  // virtual patches (checks/virtual-patches.ts, protocol/properties.ts)
  'too_many_user_properties',
  // authentication (checks/auth.ts)
  'bad_credentials',
  'not_authorized',
  'auth_backend_failed',
  'banned',
  'client_id_refused',
  'client_id_taken',
  'access_revoked',
  // topic allow-list (checks/acl.ts)
  'acl_denied',
  // quotas
  'quota_exceeded',
  // the chain itself
  'check_failed',
  // limits (checks/size.ts, checks/rate.ts, checks/quota.ts, limits/*)
  'payload_too_large',
  'rate_limited',
  'quota_exceeded',
  'receive_maximum_exceeded',
  'connection_rate',
  'too_many_connections',
  'server_overloaded',
  'idle_timeout',
  // fleet-wide limits (fleet/*): the shared store is down and the limit fails closed
  'store_unavailable',
] as const
export type DenyReason = (typeof denyReasons)[number]

/** Why a session ended, beyond the denials above. */
export const endReasons = [
  'client_disconnect',
  'client_closed',
  'client_error',
  'upstream_closed',
  'upstream_unavailable',
  'upstream_error',
  'upstream_protocol_error',
  'shutdown',
  // an operator closed it through the admin endpoint (DELETE /sessions/{clientId})
  'kicked',
] as const
export type EndReason = (typeof endReasons)[number]

export type CloseReason = DenyReason | EndReason
export const closeReasons: readonly CloseReason[] = [...denyReasons.filter((r) => r !== 'ok'), ...endReasons]
