// What certgate itself says to an MQTT device, in the words of the protocol level its CONNECT
// named: the CONNACK that refuses it, and (MQTT 5 only) the DISCONNECT that ends a live connection
// certgate closes. Never why beyond the code: the log and metrics carry the reason.
import type { CloseReason, RefusalReason } from '../reasons.js'

/** Refusals that may pass by themselves: no CONNACK, which would stop MQTT.js from reconnecting (README "upstream"). */
const TRANSIENT: ReadonlySet<RefusalReason> = new Set<RefusalReason>(['overloaded', 'validator_failed', 'registry_unavailable', 'upstream_unavailable', 'ocsp_unavailable'])

/**
 * How a refused device is answered: `none` (the connection just closes: transient, or the device
 * already got its answer, or it sent no CONNECT worth answering), `not_authorized` (v3.1.1 return
 * code 5 [MQTT-3.2.2-3] / v5 reason 0x87), `bad_credentials` (code 4 / 0x86, the CONNECT's user
 * name or password is the problem; certgate checks neither today, so no reason maps there yet).
 */
export type RefusalAnswer = 'none' | 'not_authorized' | 'bad_credentials'

export function refusalAnswer (reason: RefusalReason): RefusalAnswer {
  if (TRANSIENT.has(reason)) return 'none'
  // Answered by the forwarder when it read the CONNECT (identifier rejected), or nothing to answer.
  if (reason === 'mqtt_protocol_error' || reason === 'mqtt_client_id_mismatch' || reason === 'mqtt_version_unsupported') return 'none'
  return 'not_authorized'
}

/** CONNACK refusing the connection; `protocolVersion` is the CONNECT's (3 = 3.1, 4 = 3.1.1, 5 = 5.0). */
export function refusingConnack (answer: Exclude<RefusalAnswer, 'none'>, protocolVersion: number): Buffer {
  // MQTT 5 §3.2.2.2: 0x86 Bad User Name or Password, 0x87 Not authorized; then a zero property length.
  if (protocolVersion === 5) return Buffer.from([0x20, 0x03, 0x00, answer === 'not_authorized' ? 0x87 : 0x86, 0x00])
  // MQTT 3.1.1 §3.2.2.3: 4 bad user name or password, 5 not authorized (the same codes in 3.1).
  return Buffer.from([0x20, 0x02, 0x00, answer === 'not_authorized' ? 0x05 : 0x04])
}

/** MQTT 5 CONNACK 0x84 "Unsupported Protocol Version" (§3.2.2.2): for a broker that cannot speak MQTT 5. */
export const UNSUPPORTED_PROTOCOL_VERSION = Buffer.from([0x20, 0x03, 0x00, 0x84, 0x00])

/** MQTT 5 §3.14.2.1 reason codes for a server-sent DISCONNECT, per reason certgate closes a connection. */
const DISCONNECT_REASON: Readonly<Record<CloseReason, number>> = {
  device_disabled: 0x98, // Administrative action
  device_deleted: 0x98,
  device_changed: 0x98,
  ca_removed: 0x98,
  cert_revoked: 0x98,
  cert_expired: 0x87, // Not authorized: the certificate no longer authorizes the connection
  ocsp_unavailable: 0x87, // Not authorized: its certificate's status cannot be confirmed (policy "closed")
  max_age: 0xa0, // Maximum connect time
  idle: 0x8d, // Keep Alive timeout
  upstream_closed: 0x80, // Unspecified error (normally the broker's own DISCONNECT passes through)
  upstream_refused: 0x80, // never sent: the broker's own CONNACK went to the device
  mqtt_protocol_error: 0x82, // Protocol Error
  shutdown: 0x8b // Server shutting down
}

export function disconnectReasonCode (reason: CloseReason): number {
  return DISCONNECT_REASON[reason]
}

/** An MQTT 5 DISCONNECT with a reason code and no properties (§3.14). */
export function disconnectPacket (reason: CloseReason): Buffer {
  return Buffer.from([0xe0, 0x02, disconnectReasonCode(reason), 0x00])
}

/** Names of CONNACK codes a broker may refuse with: MQTT 3.1.1 §3.2.2.3 return codes, MQTT 5 §3.2.2.2 reasons. */
const V4_CONNACK: Readonly<Record<number, string>> = { 1: 'unacceptable protocol version', 2: 'identifier rejected', 3: 'server unavailable',
  4: 'bad user name or password', 5: 'not authorized' }
const V5_CONNACK: Readonly<Record<number, string>> = {
  0x80: 'Unspecified error', 0x81: 'Malformed Packet', 0x82: 'Protocol Error', 0x83: 'Implementation specific error',
  0x84: 'Unsupported Protocol Version', 0x85: 'Client Identifier not valid', 0x86: 'Bad User Name or Password', 0x87: 'Not authorized',
  0x88: 'Server unavailable', 0x89: 'Server busy', 0x8a: 'Banned', 0x8c: 'Bad authentication method',
  0x90: 'Topic Name invalid', 0x95: 'Packet too large', 0x97: 'Quota exceeded', 0x99: 'Payload format invalid',
  0x9a: 'Retain not supported', 0x9b: 'QoS not supported', 0x9c: 'Use another server', 0x9d: 'Server moved',
  0x9f: 'Connection rate exceeded'
}

/**
 * Watches the first packet a broker sends: a CONNACK refusing the connection is remembered, so
 * the close that follows is logged as the broker's refusal, not as a network fault.
 */
export function brokerConnackWatch (): { feed: (chunk: Buffer) => void, refusal: () => string | undefined } {
  let head: Buffer = Buffer.alloc(0)
  let done = false
  let refusal: string | undefined
  return {
    feed (chunk) {
      if (done) return
      head = Buffer.concat([head, chunk.subarray(0, 8)]).subarray(0, 8)
      // 0x20 CONNACK, its remaining length (1-4 bytes), acknowledge flags, then the code [MQTT-3.2.2].
      let at = 1
      while (at < head.length && at < 5 && ((head[at] as number) & 0x80) !== 0) at++
      if (head[0] !== 0x20 || at >= 5) { done = true; return }
      if (head.length < at + 3) return
      done = true
      const code = head[at + 2] as number
      if (code === 0) return
      // A 3.1.1 CONNACK is always 2 bytes long; a 5.0 one has at least a property length more.
      const v5 = at > 1 || (head[1] as number) >= 3
      refusal = `the broker refused the CONNECT: CONNACK ${v5 ? 'reason' : 'return code'} 0x${code.toString(16).padStart(2, '0')} (${(v5 ? V5_CONNACK : V4_CONNACK)[code] ?? 'unknown'})`
    },
    refusal: () => refusal
  }
}
