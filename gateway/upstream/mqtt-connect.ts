// The MQTT CONNECT rules every MQTT path shares (plain `mqtt` mode and MQTT over WebSockets):
// frame the first packet, which must be a CONNECT whose clientId is the deviceId; set its username
// to the deviceId if so configured; check whatever was pipelined after it with the stream guard.
import mqttPacket from 'mqtt-packet'
import type { RefusalReason } from '../reasons.js'
import { mqttStreamGuard } from './mqtt-stream-guard.js'
import type { StreamGuard } from './forwarder.js'

export type Framed =
  | { readonly state: 'more' }
  | { readonly state: 'invalid', readonly detail: string }
  | { readonly state: 'complete', readonly length: number }

/** MQTT §1.5.5 variable byte integer after the first byte: at most 4 bytes. */
function remainingLength (buf: Buffer): { length: number, headerBytes: number } | 'more' | 'malformed' {
  let length = 0
  for (let i = 1; i <= 4; i++) {
    if (i >= buf.length) return 'more'
    const b = buf[i] as number
    length += (b & 0x7f) * 128 ** (i - 1)
    if ((b & 0x80) === 0) return { length, headerBytes: i + 1 }
  }
  return 'malformed'
}

/** Is there one whole first packet at the start of `buf` (MQTT §2.1), and is it a CONNECT? */
export function frameConnect (buf: Buffer, maxBytes: number): Framed {
  if (buf.length === 0) return { state: 'more' }
  // [MQTT-3.1.0-1] the first packet is CONNECT; [MQTT-2.2.2-2] its flags are 0.
  if (buf[0] !== 0x10) return { state: 'invalid', detail: `the first packet is not CONNECT (first byte 0x${(buf[0] ?? 0).toString(16)})` }
  const header = remainingLength(buf)
  if (header === 'more') return { state: 'more' }
  if (header === 'malformed') return { state: 'invalid', detail: 'malformed remaining length' }
  const total = header.headerBytes + header.length
  if (total > maxBytes) return { state: 'invalid', detail: `CONNECT of ${total} bytes exceeds the ${maxBytes}-byte limit` }
  return buf.length >= total ? { state: 'complete', length: total } : { state: 'more' }
}

function parseConnect (bytes: Buffer): mqttPacket.IConnectPacket | string {
  const parser = mqttPacket.parser()
  let packet: mqttPacket.Packet | undefined
  let error: string | undefined
  parser.on('packet', (p: mqttPacket.Packet) => { packet ??= p })
  parser.on('error', (e: Error) => { error ??= e.message })
  parser.parse(bytes)
  if (error !== undefined) return `malformed CONNECT: ${error}`
  if (packet?.cmd !== 'connect') return 'the first packet is not a complete CONNECT'
  return packet
}

/** CONNACK "identifier rejected": v3.1.1 return code 2 [MQTT-3.2.2-3]; v5 reason 0x85. */
function identifierRejected (protocolVersion: number): Buffer {
  return protocolVersion === 5 ? Buffer.from([0x20, 0x03, 0x00, 0x85, 0x00]) : Buffer.from([0x20, 0x02, 0x00, 0x02])
}

export type Admitted =
  /** `forward`: the CONNECT as the broker gets it, then what was pipelined after it. */
  | { readonly ok: true, readonly forward: readonly Buffer[], readonly guard: StreamGuard, readonly protocolVersion: number }
  /** `reply`: what the device is told before it is closed (a CONNACK or DISCONNECT), if anything. */
  | { readonly ok: false, readonly reason: RefusalReason, readonly detail: string, readonly reply: Buffer | undefined }

/** `bytes` starts with a complete CONNECT of `connectLength` bytes (see frameConnect). */
export function admitConnect (bytes: Buffer, connectLength: number, deviceId: string, usernameIsDeviceId: boolean): Admitted {
  const connect = parseConnect(bytes.subarray(0, connectLength))
  if (typeof connect === 'string') return { ok: false, reason: 'mqtt_protocol_error', detail: connect, reply: undefined }
  const version = connect.protocolVersion ?? 4
  if (connect.clientId !== deviceId) {
    return { ok: false, reason: 'mqtt_client_id_mismatch', detail: `CONNECT clientId "${connect.clientId.slice(0, 128)}" is not the deviceId "${deviceId}"`, reply: identifierRejected(version) }
  }
  const guard = mqttStreamGuard(version)
  const rest = bytes.subarray(connectLength)
  const bad = rest.length === 0 ? undefined : guard(rest)
  if (bad !== undefined) return { ok: false, reason: 'mqtt_protocol_error', detail: bad.detail, reply: bad.farewell }
  const first = usernameIsDeviceId ? mqttPacket.generate({ ...connect, username: deviceId }) : bytes.subarray(0, connectLength)
  return { ok: true, forward: rest.length === 0 ? [first] : [first, rest], guard, protocolVersion: version }
}

/** The protocol level a complete CONNECT names (3 = 3.1, 4 = 3.1.1, 5 = 5.0), or why it cannot be read. */
export function connectProtocolVersion (bytes: Buffer, connectLength: number): number | string {
  const connect = parseConnect(bytes.subarray(0, connectLength))
  return typeof connect === 'string' ? connect : connect.protocolVersion ?? 4
}
