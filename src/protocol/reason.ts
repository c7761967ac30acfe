/**
 * Protocol answers. `ReasonCode` holds MQTT 5.0 reason codes (spec 2.4); `ConnackReturnCode` the
 * MQTT 3.1/3.1.1 CONNACK return codes. Both are numbers on the wire; these names make call sites readable.
 */
export const ReasonCode = {
  Success: 0x00,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  KeepAliveTimeout: 0x8d,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  ConnectionRateExceeded: 0x9f,
} as const
export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode]

export const ConnackReturnCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const
export type ConnackReturnCode = (typeof ConnackReturnCode)[keyof typeof ConnackReturnCode]

/**
 * The 3.1.1 CONNACK return code that carries the meaning of a 5.0 CONNACK reason code.
 * 3.1.1 has no code for most failures; those are answered by closing the connection (null).
 */
export function connackReturnCodeFor(reason: number): ConnackReturnCode | null {
  switch (reason) {
    case ReasonCode.UnsupportedProtocolVersion: return ConnackReturnCode.UnacceptableProtocolVersion
    case ReasonCode.ClientIdentifierNotValid: return ConnackReturnCode.IdentifierRejected
    case ReasonCode.ServerUnavailable:
    case ReasonCode.ServerBusy:
    case ReasonCode.ServerShuttingDown:
    case ReasonCode.ConnectionRateExceeded:
    case ReasonCode.QuotaExceeded:
      return ConnackReturnCode.ServerUnavailable
    case ReasonCode.BadUserNameOrPassword: return ConnackReturnCode.BadUserNameOrPassword
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
      return ConnackReturnCode.NotAuthorized
    default: return null
  }
}
