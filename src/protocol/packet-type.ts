/** MQTT control packet types (fixed header bits 7-4) and the per-type rules of the fixed header. */

export const PacketType = {
  Reserved: 0,
  Connect: 1,
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Pubrec: 5,
  Pubrel: 6,
  Pubcomp: 7,
  Subscribe: 8,
  Suback: 9,
  Unsubscribe: 10,
  Unsuback: 11,
  Pingreq: 12,
  Pingresp: 13,
  Disconnect: 14,
  Auth: 15,
} as const

/** Lower-case names, used as the `packet_type` label of metrics and in logs. Index = type. */
export const packetTypeNames = [
  'reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp',
  'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth',
] as const
export type PacketTypeName = (typeof packetTypeNames)[number]

const ANY = 0xff
/**
 * Required values of the fixed-header flag bits, by type; ANY for PUBLISH (its flags carry DUP/QoS/RETAIN).
 * Where a flag bit is marked as Reserved it MUST be set to the value listed [MQTT-2.2.2-1];
 * if invalid flags are received the receiver MUST close the Network Connection [MQTT-2.2.2-2].
 */
export const requiredFlags = new Uint8Array([
  ANY, 0, 0, ANY, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0,
])
export const FLAGS_ANY = ANY

/**
 * Packet types a client may send, by protocol level (3 and 4: MQTT 3.1 / 3.1.1; 5: MQTT 5.0).
 * CONNACK, SUBACK, UNSUBACK and PINGRESP only ever flow from the server; type 0 is reserved;
 * AUTH exists only in 5.0.
 */
const clientTypesV3 = new Uint8Array([0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0])
const clientTypesV5 = new Uint8Array([0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1])

export function clientMaySend(type: number, version: number): boolean {
  return (version === 5 ? clientTypesV5 : clientTypesV3)[type] === 1
}
