// `mqtt` mode: the device's first packet must be an MQTT CONNECT whose clientId is its deviceId;
// only then is the upstream broker connected and handed the CONNECT (its username set to the
// deviceId if so configured, so broker ACLs keyed on username isolate devices) and what follows,
// framed so that no second CONNECT gets through. A clientId that is not the deviceId gets the
// protocol's "identifier rejected" CONNACK (a mistake to fix, not to retry). While the broker is
// unreachable the connection is closed without a CONNACK: clients retry a closed connection with
// their backoff, while a "server unavailable" CONNACK stops MQTT.js (by default) from ever
// reconnecting, which would strand a fleet after a broker restart.
import type { Duplex } from 'node:stream'
import { connectUpstream, guarded, pump, type DeviceConnection, type Forwarder, type HostPort, type Opened } from './forwarder.js'
import { admitConnect, frameConnect } from './mqtt-connect.js'
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
      return { result: framed.state === 'invalid' ? { ok: false, detail: framed.detail } : { ok: true, bytes: buf, connectLength: framed.length }, consumed: buf.length }
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
      const c = await connectUpstream(opts.upstream, opts.connectTimeoutMs, opts.health)
      if (!c.ok) return c
      // Revoked (closed) while the upstream was opening: the broker must never see its CONNECT.
      if (!socket.destroyed) {
        if (opts.preamble !== undefined) c.upstream.write(opts.preamble(device))
        for (const b of admitted.forward) c.upstream.write(b)
      }
      return { ok: true, connectSeconds: c.connectSeconds, serve: async () => await pump(socket, c.upstream, guarded(admitted.guard)), abandon: () => { c.upstream.destroy() } }
    },
    close: async () => undefined
  }
}
