// `mqtt` mode: the device's first packet must be an MQTT CONNECT whose clientId is its deviceId;
// only then is the upstream broker connected and handed the CONNECT (its username set to the
// deviceId if so configured, so broker ACLs keyed on username isolate devices) and what follows,
// framed so that no second CONNECT gets through. A clientId that is not the deviceId gets the
// protocol's "identifier rejected" CONNACK (a mistake to fix, not to retry). While the broker is
// unreachable the connection is closed without a CONNACK: clients retry a closed connection with
// their backoff, while a "server unavailable" CONNACK stops MQTT.js (by default) from ever
// reconnecting, which would strand a fleet after a broker restart.
import mqttPacket from 'mqtt-packet'
import type { Duplex } from 'node:stream'
import { connectUpstream, pump, type DeviceConnection, type Forwarder, type HostPort, type Opened } from './forwarder.js'
import { mqttStreamGuard } from './mqtt-stream-guard.js'
import type { UpstreamHealth } from './upstream-health.js'

export interface MqttForwarderOptions {
  readonly upstream: HostPort
  readonly health: UpstreamHealth
  readonly connectTimeoutMs: number
  /** Overwrite the CONNECT username with the deviceId. */
  readonly usernameIsDeviceId: boolean
  /** Written to the broker before the CONNECT (a PROXY protocol header). */
  readonly preamble?: ((device: DeviceConnection) => Buffer) | undefined
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
    async open (device): Promise<Opened> {
      const { socket, identity } = device
      const first = await readFirstPacket(socket, opts)
      if (!first.ok) return { ok: false, reason: 'mqtt_protocol_error', detail: first.detail }
      const connect = parseConnect(first.bytes.subarray(0, first.connectLength))
      if (typeof connect === 'string') return { ok: false, reason: 'mqtt_protocol_error', detail: connect }
      const version = connect.protocolVersion ?? 4
      if (connect.clientId !== identity.deviceId) {
        socket.end(identifierRejected(version))
        return { ok: false, reason: 'mqtt_client_id_mismatch', detail: `CONNECT clientId "${connect.clientId.slice(0, 128)}" is not the deviceId "${identity.deviceId}"` }
      }
      const guard = mqttStreamGuard(version)
      // Whatever the device pipelined after its CONNECT is checked like everything after it.
      const rest = first.bytes.subarray(first.connectLength)
      const bad = rest.length === 0 ? undefined : guard(rest)
      if (bad !== undefined) {
        if (bad.farewell === undefined) socket.destroy()
        else socket.end(bad.farewell)
        return { ok: false, reason: 'mqtt_protocol_error', detail: bad.detail }
      }
      const c = await connectUpstream(opts.upstream, opts.connectTimeoutMs, opts.health)
      if (!c.ok) return c
      // Revoked (closed) while the upstream was opening: the broker must never see its CONNECT.
      if (!socket.destroyed) {
        if (opts.preamble !== undefined) c.upstream.write(opts.preamble(device))
        c.upstream.write(opts.usernameIsDeviceId ? withUsername(connect, identity.deviceId) : first.bytes.subarray(0, first.connectLength))
        if (rest.length > 0) c.upstream.write(rest)
      }
      return { ok: true, connectSeconds: c.connectSeconds, serve: async () => await pump(socket, c.upstream, guard), abandon: () => { c.upstream.destroy() } }
    },
    close: async () => undefined
  }
}

/** The same CONNECT with its username replaced (a password, if any, is kept). */
export function withUsername (connect: mqttPacket.IConnectPacket, username: string): Buffer {
  return mqttPacket.generate({ ...connect, username })
}
