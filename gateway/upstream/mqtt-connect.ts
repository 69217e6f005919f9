// The MQTT CONNECT rules every MQTT path shares (plain `mqtt` mode and MQTT over WebSockets):
// frame the first packet, which must be a CONNECT whose clientId is the deviceId; set its username
// to the deviceId if so configured; check whatever was pipelined after it with the stream guard.
// The broker never gets the device's own bytes for the CONNECT, only the packet certgate parsed,
// encoded again: two parsers must never get a chance to disagree about a crafted packet (bytes
// its fields do not account for, duplicate properties, odd strings). A CONNECT that does not
// survive that round trip unchanged is refused as malformed.
import { isDeepStrictEqual } from 'node:util'
import mqttPacket from 'mqtt-packet'
import type { RefusalReason } from '../reasons.js'
import { mqttStreamGuard } from './mqtt-stream-guard.js'
import type { StreamGuard } from './forwarder.js'
import { errorMessage } from '../../workers/errors.js'

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

/**
 * The CONNECT as certgate will forward it: encoded from the parsed fields, or why it cannot be.
 * Canonical means: re-encoding gives as many bytes as were sent (nothing unaccounted for, no
 * duplicate or non-minimal fields) and parses back to the very same fields.
 */
function canonical (sent: Buffer, connect: mqttPacket.IConnectPacket): Buffer | string {
  // [MQTT-1.5.3-2] / [MQTT-1.5.4-2] (v5): no U+0000 in strings; invalid UTF-8 was already turned
  // into U+FFFD by the parser, which the length comparison below catches.
  const strings = [connect.clientId, connect.protocolId, connect.username, connect.will?.topic]
  if (strings.some((v) => typeof v === 'string' && v.includes('\u0000'))) return 'a CONNECT string contains U+0000'
  // MQTT 5 §3.1.2.11: every CONNECT and will property but User Property appears at most once
  // (the parser keeps repeats as an array, and the encoder would write them all again).
  for (const props of [connect.properties, connect.will?.properties]) {
    const repeated = Object.entries(props ?? {}).find(([name, value]) => name !== 'userProperties' && Array.isArray(value))
    if (repeated !== undefined) return `the property ${repeated[0]} appears more than once`
  }
  let again: Buffer
  try { again = mqttPacket.generate(connect) } catch (err) { return `CONNECT fields cannot be encoded: ${errorMessage(err)}` }
  if (again.length !== sent.length) {
    return `the CONNECT is ${sent.length} bytes but its fields take ${again.length} (bytes its fields do not account for, duplicate or non-minimal fields)`
  }
  const reparsed = parseConnect(again)
  if (typeof reparsed === 'string' || !isDeepStrictEqual(fieldsOf(reparsed), fieldsOf(connect))) return 'the CONNECT does not encode back to the same fields'
  return again
}

/** The parsed fields, without the parser's bookkeeping (lengths of what it read). */
function fieldsOf (p: mqttPacket.IConnectPacket): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...p }
  delete fields.length
  return fields
}

/** A CONNECT certgate cannot forward faithfully: v5 CONNACK 0x81 "Malformed Packet"; v3.1.1 has no code for it, only closing [MQTT-4.8.0-1]. */
function malformed (protocolVersion: number): Buffer | undefined {
  return protocolVersion === 5 ? Buffer.from([0x20, 0x03, 0x00, 0x81, 0x00]) : undefined
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
  const sent = bytes.subarray(0, connectLength)
  const connect = parseConnect(sent)
  if (typeof connect === 'string') return { ok: false, reason: 'mqtt_protocol_error', detail: connect, reply: undefined }
  const version = connect.protocolVersion ?? 4
  const encoded = canonical(sent, connect)
  if (typeof encoded === 'string') return { ok: false, reason: 'mqtt_protocol_error', detail: `malformed CONNECT: ${encoded}`, reply: malformed(version) }
  if (connect.clientId !== deviceId) {
    return { ok: false, reason: 'mqtt_client_id_mismatch',
      detail: `CONNECT clientId "${connect.clientId.slice(0, 128)}" is not the deviceId "${deviceId}"`, reply: identifierRejected(version) }
  }
  const guard = mqttStreamGuard(version)
  const rest = bytes.subarray(connectLength)
  const bad = rest.length === 0 ? undefined : guard(rest)
  if (bad !== undefined) return { ok: false, reason: 'mqtt_protocol_error', detail: bad.detail, reply: bad.farewell }
  const first = usernameIsDeviceId ? mqttPacket.generate({ ...connect, username: deviceId }) : encoded
  return { ok: true, forward: rest.length === 0 ? [first] : [first, rest], guard, protocolVersion: version }
}

/** The protocol level a complete CONNECT names (3 = 3.1, 4 = 3.1.1, 5 = 5.0), or why it cannot be read. */
export function connectProtocolVersion (bytes: Buffer, connectLength: number): number | string {
  const connect = parseConnect(bytes.subarray(0, connectLength))
  return typeof connect === 'string' ? connect : connect.protocolVersion ?? 4
}
