// `mqtt` mode: the device's first packet must be an MQTT CONNECT whose clientId is its deviceId;
// only then is the upstream broker connected and handed the CONNECT (its username set to the
// deviceId if so configured, so broker ACLs keyed on username isolate devices) and what follows,
// framed so that no second CONNECT gets through. A clientId that is not the deviceId gets the
// protocol's "identifier rejected" CONNACK (a mistake to fix, not to retry). While the broker is
// unreachable the connection is closed without a CONNACK: clients retry a closed connection with
// their backoff, while a "server unavailable" CONNACK stops MQTT.js (by default) from ever
// reconnecting, which would strand a fleet after a broker restart. A device refused for any other
// reason gets its CONNECT read and answered "not authorized" (mqtt-replies.ts); an MQTT 5 device
// whose live connection certgate closes gets a DISCONNECT with a reason code first.
import type { Duplex } from 'node:stream'
import { connectUpstream, destroyed, endWith, guarded, pump, type DeviceConnection, type Forwarder, type HostPort, type Opened,
  type PumpHandle } from './forwarder.js'
import { admitConnect, connectProtocolVersion, frameConnect } from './mqtt-connect.js'
import { brokerConnackWatch, disconnectPacket, refusalAnswer, refusingConnack, UNSUPPORTED_PROTOCOL_VERSION } from './mqtt-replies.js'
import { mqttPacketBoundary } from './mqtt-packet-boundary.js'
import { readPrefix } from '../stream/read-prefix.js'
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
  /** Set when the upstream cannot speak MQTT 5: MQTT 5 CONNECTs are refused with CONNACK 0x84, this in the log. */
  readonly mqtt5Unsupported?: string | undefined
}

type FirstPacket =
  | { readonly ok: true, readonly bytes: Buffer, readonly connectLength: number }
  | { readonly ok: false, readonly detail: string }

/** Reads until the first packet is framed: a whole CONNECT, and whatever came with it. */
async function readFirstPacket (device: Duplex, opts: MqttForwarderOptions): Promise<FirstPacket> {
  return await readPrefix<FirstPacket>(device, {
    timeoutMs: opts.firstPacketTimeoutMs,
    examine: (buf) => {
      const framed = frameConnect(buf, opts.maxConnectBytes)
      if (framed.state === 'more') return undefined
      return { result: framed.state === 'invalid' ? { ok: false, detail: framed.detail } : { ok: true, bytes: buf, connectLength: framed.length },
        consumed: buf.length }
    },
    closed: () => ({ ok: false, detail: 'the device closed the connection before sending CONNECT' }),
    timedOut: () => ({ ok: false, detail: `no CONNECT within ${opts.firstPacketTimeoutMs} ms` })
  })
}

export function createMqttForwarder (opts: MqttForwarderOptions): Forwarder {
  return {
    async open (device): Promise<Opened> {
      const { socket, identity } = device
      const first = await readFirstPacket(socket, opts)
      if (!first.ok) return { ok: false, reason: 'mqtt_protocol_error', detail: first.detail }
      const admitted = admitConnect(first.bytes, first.connectLength, identity.deviceId, opts.usernameIsDeviceId)
      if (!admitted.ok) {
        if (admitted.reply === undefined) socket.destroy()
        else socket.end(admitted.reply)
        return admitted
      }
      if (admitted.protocolVersion === 5 && opts.mqtt5Unsupported !== undefined) {
        // Told in MQTT 5's own words before the broker is ever contacted (it would answer in 3.1.1's).
        socket.end(UNSUPPORTED_PROTOCOL_VERSION)
        return { ok: false, reason: 'mqtt_version_unsupported', detail: opts.mqtt5Unsupported }
      }
      const c = await connectUpstream(opts.upstream, opts.connectTimeoutMs, opts.health)
      if (!c.ok) return c
      // Revoked (closed) while the upstream was opening: the broker must never see its CONNECT.
      if (!socket.destroyed) {
        if (opts.preamble !== undefined) c.upstream.write(opts.preamble(device))
        for (const b of admitted.forward) c.upstream.write(b)
      }
      const v5 = admitted.protocolVersion === 5
      const boundary = mqttPacketBoundary()
      const handle: PumpHandle = {}
      return {
        ok: true,
        connectSeconds: c.connectSeconds,
        serve: async () => {
          // Registered with the pump's pipe in the same tick: they see every chunk the device gets.
          if (v5) c.upstream.on('data', boundary.feed)
          const connack = brokerConnackWatch()
          c.upstream.on('data', connack.feed)
          const ended = await pump(socket, c.upstream, guarded(admitted.guard), handle)
          const refused = connack.refusal()
          return ended.by === 'upstream' && refused !== undefined ? { by: 'upstream_refused', detail: refused } : ended
        },
        abandon: () => { c.upstream.destroy() },
        close: (reason) => {
          if (handle.goodbye === undefined) { socket.destroy(); return }
          // MQTT 3.1.1 has no server DISCONNECT [MQTT-3.14]: close_notify and close is all it gets.
          handle.goodbye(v5 && boundary.atBoundary() ? disconnectPacket(reason) : undefined)
        }
      }
    },
    refuse: async (socket, refusal) => {
      if (socket.writableEnded) return await endWith(socket) // answered already (identifier rejected)
      const answer = refusalAnswer(refusal.reason)
      if (answer === 'none') return await destroyed(socket)
      // Read its CONNECT (bounded in time and size) to answer at its protocol level.
      const first = await readFirstPacket(socket, opts)
      const version = first.ok ? connectProtocolVersion(first.bytes, first.connectLength) : undefined
      if (typeof version !== 'number') return await destroyed(socket)
      await endWith(socket, refusingConnack(answer, version))
    },
    drain: () => undefined,
    close: async () => undefined
  }
}
