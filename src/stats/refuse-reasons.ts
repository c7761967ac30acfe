/**
 * Why a listener refused a connection before handing it to a Session: a bounded list, used in logs
 * and as the `reason` label of moat_connections_refused_total.
 */
export const refuseReasons = [
  'proxy_untrusted',
  'proxy_header_invalid',
  'tls_handshake_failed',
  'client_cert_refused',
  'handshake_timeout',
  'ws_not_upgrade',
  'ws_bad_path',
  'ws_bad_origin',
  'ws_bad_subprotocol',
  // connection limits and overload (limits/connections.ts): the client is answered with a refusing CONNACK
  'connection_rate',
  'too_many_connections',
  'server_overloaded',
  // a ban on the client's address (fleet/ban-list.ts): answered with CONNACK Banned
  'banned',
] as const
export type RefuseReason = (typeof refuseReasons)[number]
