// MQTT over WebSockets under the same rules as `mqtt` mode. The device's WebSocket frames
// (RFC 6455 §5.2: masked, as from any client) are decoded as they stream in, their payload
// becomes the MQTT byte stream, which must start with a CONNECT whose clientId is the deviceId
// (its username set to the deviceId if so configured) and never carries a second one. What passes
// is re-framed as masked binary frames for the upstream; control frames (ping, pong, close) pass as
// they came. Extensions are not negotiated (certgate drops Sec-WebSocket-Extensions from the
// upgrade), so a frame with a reserved bit set is a protocol error, as is a text frame.
import type { StreamFilter, StreamGuard } from './forwarder.js'
import { admitConnect, frameConnect } from './mqtt-connect.js'
import type { RefusalReason } from '../reasons.js'

export interface WebSocketMqttOptions {
  readonly deviceId: string
  readonly usernameIsDeviceId: boolean
  readonly maxConnectBytes: number
  /** The device sent something that must not pass: say why (logs) before the filter ends it. */
  readonly onRefused: (reason: RefusalReason, detail: string) => void
}

const OPCODE = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const

/** Bytes of a frame header so far → its full size (2 until the length byte is known). */
function headerSize (h: Buffer): number {
  if (h.length < 2) return 2
  const len7 = (h[1] as number) & 0x7f
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + 4
}

const MAX_FRAME = 268_435_460

/** A binary frame from certgate to the upstream: masked (a client's frame), with a zero key. */
function clientFrame (payload: Buffer): Buffer {
  const n = payload.length
  const head = n < 126 ? Buffer.from([0x82, 0x80 | n]) : n < 65536 ? Buffer.from([0x82, 0x80 | 126, n >> 8, n & 0xff]) : Buffer.alloc(10)
  if (n >= 65536) { head[0] = 0x82; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(n), 2) }
  return Buffer.concat([head, Buffer.alloc(4), payload])
}

/** What certgate tells the device before closing: an MQTT packet in a frame, then a close frame. */
function serverFarewell (mqtt: Buffer | undefined, closeCode: number, reason: string): Buffer {
  const text = Buffer.from(reason.slice(0, 120))
  const close = Buffer.concat([Buffer.from([0x88, 2 + text.length, closeCode >> 8, closeCode & 0xff]), text])
  return mqtt === undefined ? close : Buffer.concat([Buffer.from([0x82, mqtt.length]), mqtt, close])
}

export function webSocketMqttFilter (opts: WebSocketMqttOptions): StreamFilter {
  let header: Buffer = Buffer.alloc(0) // a frame header split across chunks
  let remaining = 0 // payload bytes of the current frame still to come
  let mask: Buffer = Buffer.alloc(4)
  let maskAt = 0
  let control: { raw: Buffer[] } | undefined // a control frame passes whole
  let pending: Buffer = Buffer.alloc(0) // MQTT bytes before the CONNECT is whole
  let guard: StreamGuard | undefined // set once the CONNECT was admitted

  // Reports the refusal and ends the stream: a close frame (after a CONNACK frame when there is one).
  const endWebSocket = (reason: RefusalReason, detail: string, mqtt?: Buffer): ReturnType<StreamFilter> => {
    opts.onRefused(reason, detail)
    return { out: [], detail, farewell: serverFarewell(mqtt, reason === 'mqtt_client_id_mismatch' ? 1008 : 1002, reason) }
  }

  /** MQTT bytes from data frames: the CONNECT rules, then the guard. */
  const mqtt = (bytes: Buffer, out: Buffer[]): ReturnType<StreamFilter> | undefined => {
    if (guard !== undefined) {
      const bad = guard(bytes)
      if (bad === undefined) { out.push(clientFrame(bytes)); return undefined }
      if (bad.at > 0) out.push(clientFrame(bytes.subarray(0, bad.at)))
      opts.onRefused('mqtt_protocol_error', bad.detail)
      return { out, detail: bad.detail, farewell: serverFarewell(bad.farewell, 1002, 'mqtt_protocol_error') }
    }
    pending = pending.length === 0 ? bytes : Buffer.concat([pending, bytes])
    const framed = frameConnect(pending, opts.maxConnectBytes)
    if (framed.state === 'more') return undefined
    if (framed.state === 'invalid') return endWebSocket('mqtt_protocol_error', framed.detail)
    const admitted = admitConnect(pending, framed.length, opts.deviceId, opts.usernameIsDeviceId)
    pending = Buffer.alloc(0)
    if (!admitted.ok) return endWebSocket(admitted.reason, admitted.detail, admitted.reply)
    guard = admitted.guard
    for (const b of admitted.forward) out.push(clientFrame(b))
    return undefined
  }

  return (chunk) => {
    const out: Buffer[] = []
    let i = 0
    while (i < chunk.length) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - i)
        const part = chunk.subarray(i, i + n)
        remaining -= n
        i += n
        if (control !== undefined) {
          control.raw.push(part)
          if (remaining === 0) { out.push(Buffer.concat(control.raw)); control = undefined }
          continue
        }
        const plain = Buffer.allocUnsafe(n)
        for (let k = 0; k < n; k++) plain[k] = (part[k] as number) ^ (mask[(maskAt + k) & 3] as number)
        maskAt = (maskAt + n) & 3
        const ended = mqtt(plain, out)
        if (ended !== undefined) return ended
        continue
      }
      // A frame header: 2 bytes, then 0, 2 or 8 of extended length, then the 4-byte mask.
      const want = headerSize(header) - header.length
      const n = Math.min(want, chunk.length - i)
      header = Buffer.concat([header, chunk.subarray(i, i + n)])
      i += n
      if (header.length < headerSize(header)) continue
      const size = header.length
      const h = header.subarray(0, size)
      header = Buffer.alloc(0)
      const b0 = h[0] as number
      const b1 = h[1] as number
      const opcode = b0 & 0x0f
      if ((b0 & 0x70) !== 0) return endWebSocket('mqtt_protocol_error', 'a WebSocket frame with a reserved bit set (no extension was negotiated)')
      if ((b1 & 0x80) === 0) return endWebSocket('mqtt_protocol_error', 'an unmasked WebSocket frame from the device (RFC 6455 §5.1)')
      const len7 = b1 & 0x7f
      const length = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? Number(h.readBigUInt64BE(2)) : len7
      if (length > MAX_FRAME) return endWebSocket('mqtt_protocol_error', `a WebSocket frame of ${length} bytes (MQTT packets are at most 256 MB)`)
      mask = Buffer.from(h.subarray(size - 4, size))
      maskAt = 0
      remaining = length
      if (opcode === OPCODE.CLOSE || opcode === OPCODE.PING || opcode === OPCODE.PONG) {
        if (length > 125 || (b0 & 0x80) === 0) return endWebSocket('mqtt_protocol_error', 'a malformed WebSocket control frame')
        control = { raw: [Buffer.from(h)] }
        if (length === 0) { out.push(Buffer.concat(control.raw)); control = undefined }
      } else if (opcode === OPCODE.TEXT) {
        return endWebSocket('mqtt_protocol_error', 'a WebSocket text frame: MQTT travels in binary frames')
      } else if (opcode !== OPCODE.BINARY && opcode !== OPCODE.CONTINUATION) {
        return endWebSocket('mqtt_protocol_error', `WebSocket opcode 0x${opcode.toString(16)} is reserved`)
      }
    }
    return { out }
  }
}
