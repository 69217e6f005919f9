// `mqtt` mode: the device's first packet must be an MQTT CONNECT whose clientId is its deviceId;
// only then is the upstream broker connected and handed the CONNECT (and anything pipelined
// after it), unchanged. Otherwise the device gets the protocol's "identifier rejected" CONNACK.
import mqttPacket from 'mqtt-packet'
import type { Duplex } from 'node:stream'
import { connectUpstream, type Forwarder, type HostPort, type Opened } from './forwarder.js'

export interface MqttForwarderOptions {
  readonly upstream: HostPort
  readonly connectTimeoutMs: number
  /** How long a device may take to send its CONNECT. */
  readonly firstPacketTimeoutMs: number
  /** Largest CONNECT accepted (will message included). */
  readonly maxConnectBytes: number
}

type FirstPacket =
  | { readonly ok: true, readonly bytes: Buffer, readonly connectLength: number }
  | { readonly ok: false, readonly detail: string }

/** Reads until one whole packet is framed (MQTT §2.1: fixed header, remaining length). */
async function readFirstPacket (device: Duplex, opts: MqttForwarderOptions): Promise<FirstPacket> {
  return await new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (r: FirstPacket): void => {
      clearTimeout(timer)
      device.off('data', onData)
      device.off('close', onClose)
      device.pause()
      resolve(r)
    }
    const onClose = (): void => { done({ ok: false, detail: 'the device closed the connection before sending CONNECT' }) }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      // [MQTT-3.1.0-1] the first packet is CONNECT; [MQTT-2.2.2-2] its flags are 0.
      if (buf[0] !== 0x10) { done({ ok: false, detail: `the first packet is not CONNECT (first byte 0x${(buf[0] ?? 0).toString(16)})` }); return }
      const header = remainingLength(buf)
      if (header === 'more') return
      if (header === 'malformed') { done({ ok: false, detail: 'malformed remaining length' }); return }
      const total = header.headerBytes + header.length
      if (total > opts.maxConnectBytes) { done({ ok: false, detail: `CONNECT of ${total} bytes exceeds the ${opts.maxConnectBytes}-byte limit` }); return }
      if (buf.length >= total) done({ ok: true, bytes: buf, connectLength: total })
    }
    const timer = setTimeout(() => { done({ ok: false, detail: `no CONNECT within ${opts.firstPacketTimeoutMs} ms` }) }, opts.firstPacketTimeoutMs)
    device.on('data', onData)
    device.on('close', onClose)
    device.resume()
  })
}

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

export function createMqttForwarder (opts: MqttForwarderOptions): Forwarder {
  return {
    async open (device, identity): Promise<Opened> {
      const first = await readFirstPacket(device, opts)
      if (!first.ok) return { ok: false, reason: 'mqtt_protocol_error', detail: first.detail }
      const connect = parseConnect(first.bytes.subarray(0, first.connectLength))
      if (typeof connect === 'string') return { ok: false, reason: 'mqtt_protocol_error', detail: connect }
      if (connect.clientId !== identity.deviceId) {
        device.end(identifierRejected(connect.protocolVersion ?? 4))
        return { ok: false, reason: 'mqtt_client_id_mismatch', detail: `CONNECT clientId "${connect.clientId.slice(0, 128)}" is not the deviceId "${identity.deviceId}"` }
      }
      const opened = await connectUpstream(opts.upstream, opts.connectTimeoutMs)
      // Revoked (closed) while the upstream was opening: the broker must never see its CONNECT.
      if (opened.ok && !device.destroyed) opened.upstream.write(first.bytes)
      return opened
    }
  }
}
