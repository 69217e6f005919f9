// What every forwarding mode provides: open the upstream for an authenticated device (or refuse
// it with a reason), then pump bytes both ways until either side closes.
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Identity } from '../auth/authenticate.js'
import type { RefusalReason } from '../reasons.js'
import type { HostPort } from '../config.js'

export type { HostPort }


export type Opened =
  | { readonly ok: true, readonly upstream: Socket, /** connect() to connected */ readonly connectSeconds: number }
  | { readonly ok: false, readonly reason: RefusalReason, readonly detail: string }

export interface Forwarder {
  open: (device: Duplex, identity: Identity) => Promise<Opened>
}

/** Connects to the upstream, giving up after `timeoutMs`. */
export async function connectUpstream (target: HostPort, timeoutMs: number): Promise<Opened> {
  return await new Promise((resolve) => {
    const started = performance.now()
    const s = connect({ host: target.host, port: target.port, noDelay: true })
    const fail = (detail: string): void => { s.destroy(); resolve({ ok: false, reason: 'upstream_unavailable', detail }) }
    const timer = setTimeout(() => { fail(`upstream ${target.host}:${target.port} did not accept the connection within ${timeoutMs} ms`) }, timeoutMs)
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve({ ok: true, upstream: s, connectSeconds: (performance.now() - started) / 1000 }) })
    s.once('error', (err) => { clearTimeout(timer); fail(`upstream ${target.host}:${target.port}: ${err.message}`) })
  })
}

/**
 * Pumps both ways with backpressure (pipe) until either side closes; then closes the other.
 * Resolves with which side went first, once both are closed.
 */
export async function pump (device: Duplex, upstream: Socket): Promise<'device' | 'upstream'> {
  return await new Promise((resolve) => {
    let first: 'device' | 'upstream' | undefined
    let closed = 0
    const onClose = (side: 'device' | 'upstream') => (): void => {
      first ??= side
      if (side === 'device') upstream.destroy()
      else device.destroy()
      if (++closed === 2) resolve(first)
    }
    // Errors end up as 'close'; listening keeps them from being unhandled.
    device.on('error', () => undefined)
    upstream.on('error', () => undefined)
    device.once('close', onClose('device'))
    upstream.once('close', onClose('upstream'))
    device.pipe(upstream)
    upstream.pipe(device)
  })
}

export function createTcpForwarder (target: HostPort, timeoutMs: number): Forwarder {
  return { open: async () => await connectUpstream(target, timeoutMs) }
}
