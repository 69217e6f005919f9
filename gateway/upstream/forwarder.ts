// What every forwarding mode provides: given an authenticated device connection, open its way to
// the upstream (or refuse it with a reason), then serve it until either side closes. Also the
// pieces the modes share: connecting to an upstream with a timeout and the fail-fast gate, and the
// two-way pump.
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { Identity } from '../auth/authenticate.js'
import type { CloseReason, RefusalReason } from '../reasons.js'
import type { HostPort } from '../config.js'
import type { SentChain } from '../tls/peer-chain.js'
import type { UpstreamHealth } from './upstream-health.js'
import type { Endpoint } from '../proxy-protocol/v2-header.js'

export type { HostPort }

/** An authenticated device, as a forwarder needs it. */
export interface DeviceConnection {
  readonly socket: TLSSocket
  readonly identity: Identity
  /** What the device sent (DER), for modes that pass the certificate on. */
  readonly sent: SentChain
  /** The device's address (from a trusted balancer's PROXY header when there is one). */
  readonly source: Endpoint
  /** The address the device connected to. */
  readonly destination: Endpoint
}

/** How a served connection ended. */
export type Ended =
  | { readonly by: 'device' }
  | { readonly by: 'upstream', readonly detail: string }
  /** The broker answered the CONNECT with a refusing CONNACK (passed on to the device), then closed. */
  | { readonly by: 'upstream_refused', readonly detail: string }
  | { readonly by: 'protocol', readonly detail: string }

export type Opened =
  | {
    readonly ok: true
    /** connect() to connected, for modes that open an upstream connection per device. */
    readonly connectSeconds: number | undefined
    /** Forwards until either side closes. */
    serve: () => Promise<Ended>
    /** The device left before serving began: release what open() took. */
    abandon: () => void
    /** certgate ends the served connection (revoked, idle, shutdown…): in the protocol's words where it has them. */
    close: (reason: CloseReason) => void
  }
  | { readonly ok: false, readonly reason: RefusalReason, readonly detail: string }

/** A refusal as the device's mode answers it. */
export interface DeviceRefusal { readonly reason: RefusalReason, readonly detail: string }

export interface Forwarder {
  open: (device: DeviceConnection) => Promise<Opened>
  /**
   * Tells a refused device so in its protocol (mqtt: CONNACK, http: a 403 JSON error), then closes
   * it; resolves once the socket is closed. Transient refusals are not answered in a way that
   * stops a client from retrying.
   */
  refuse: (socket: TLSSocket, refusal: DeviceRefusal) => Promise<void>
  /** Shutdown began: let idle connections go now rather than at the drain timeout. */
  drain: () => void
  close: () => Promise<void>
}

/** How long a device may take to read certgate's last words before its connection is destroyed. */
export const FAREWELL_MS = 1000

/** Ends the socket (TLS close_notify) after `last`, destroys it if the device has not closed it within FAREWELL_MS; resolves when closed. */
export async function endWith (socket: Duplex, last?: Buffer): Promise<void> {
  if (socket.destroyed) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => socket.destroy(), FAREWELL_MS)
    timer.unref()
    socket.once('close', () => { clearTimeout(timer); resolve() })
    socket.on('error', () => undefined)
    // Read and drop whatever the device still sends, so its own close is seen.
    socket.resume()
    if (!socket.writableEnded) socket.end(last)
  })
}

/** Closes a socket at once; resolves when closed. */
export async function destroyed (socket: Duplex): Promise<void> {
  if (socket.destroyed) return
  await new Promise<void>((resolve) => { socket.once('close', () => { resolve() }); socket.destroy() })
}

export type Connected =
  | { readonly ok: true, readonly upstream: Socket, readonly connectSeconds: number }
  /** `attempted` false: refused without trying, the upstream being known down. */
  | { readonly ok: false, readonly reason: 'upstream_unavailable', readonly detail: string, readonly attempted: boolean }

/** Connects to the upstream, unless it is known to be down; gives up after `timeoutMs`. */
export async function connectUpstream (target: HostPort, timeoutMs: number, health: UpstreamHealth): Promise<Connected> {
  const refusal = health.admit()
  if (refusal !== undefined) return { ok: false, reason: 'upstream_unavailable', detail: refusal, attempted: false }
  return await new Promise((resolve) => {
    const started = performance.now()
    const s = connect({ host: target.host, port: target.port, noDelay: true })
    const fail = (detail: string): void => {
      s.destroy()
      health.failed(detail)
      resolve({ ok: false, reason: 'upstream_unavailable', detail: `upstream ${target.host}:${target.port}: ${detail}`, attempted: true })
    }
    const timer = setTimeout(() => { fail(`did not accept the connection within ${timeoutMs} ms`) }, timeoutMs)
    const failed = (err: Error & { code?: string }): void => { clearTimeout(timer); fail(err.code ?? err.message) }
    s.once('connect', () => {
      clearTimeout(timer)
      // off(), not removeAllListeners('error'): that deletes the key from the socket's listener
      // table, which turns it into a slow dictionary for the rest of the connection (~5 µs per
      // connection in V8's runtime here, perf on Node 22).
      s.off('error', failed)
      health.succeeded()
      resolve({ ok: true, upstream: s, connectSeconds: (performance.now() - started) / 1000 })
    })
    s.once('error', failed)
  })
}

/**
 * Checks each chunk from the device before it is forwarded: undefined lets it through; otherwise
 * the bytes before offset `at` are forwarded and the connection ends, the device first getting
 * `farewell` (a protocol's error packet) if given.
 */
export type StreamGuard = (chunk: Buffer) => { readonly detail: string, readonly at: number, readonly farewell?: Buffer } | undefined

/**
 * Turns each chunk from the device into what the upstream gets (`out`); with `detail`, that is
 * the last of it and the connection ends, the device first getting `farewell` if given.
 */
export type StreamFilter = (chunk: Buffer) => { readonly out: readonly Buffer[], readonly detail?: string, readonly farewell?: Buffer | undefined }

/** A guard as a filter: chunks pass unchanged (no copy) until the guard objects. */
export function guarded (guard: StreamGuard): StreamFilter {
  return (chunk) => {
    const bad = guard(chunk)
    return bad === undefined ? { out: [chunk] } : { out: bad.at > 0 ? [chunk.subarray(0, bad.at)] : [], detail: bad.detail, farewell: bad.farewell }
  }
}

/** Lets certgate end a pump itself: filled in by pump(). */
export interface PumpHandle {
  /**
   * Stops both directions and drops the upstream at once, then tells the device `last` (if any),
   * ends its TLS (close_notify) and destroys it after FAREWELL_MS. The pump ends `by: 'device'`:
   * whoever said goodbye has counted it.
   */
  goodbye?: (last: Buffer | undefined) => void
}

/**
 * Pumps both ways with backpressure until either side closes; then closes the other. Resolves
 * with how it ended, once both are closed. A filter, if given, sees the device's bytes first.
 */
export async function pump (device: Duplex, upstream: Socket, filter?: StreamFilter, handle?: PumpHandle): Promise<Ended> {
  return await new Promise((resolve) => {
    let ended: Ended | undefined
    let upstreamError: string | undefined
    let closed = 0
    let leaving = false
    const onClose = (side: 'device' | 'upstream') => (): void => {
      ended ??= side === 'device'
        ? { by: 'device' }
        : { by: 'upstream', detail: upstreamError === undefined ? 'the upstream closed the connection' : `the upstream connection failed (${upstreamError})` }
      if (side === 'device') upstream.destroy()
      else if (!leaving) device.destroy()
      if (++closed === 2) resolve(ended)
    }
    if (handle !== undefined) {
      handle.goodbye = (last) => {
        if (ended !== undefined || device.destroyed) { device.destroy(); return }
        ended = { by: 'device' }
        leaving = true
        upstream.unpipe(device)
        if (filter === undefined) device.unpipe(upstream) // else the 'data' listener drops what comes now
        upstream.destroy()
        void endWith(device, last)
      }
    }
    // Errors end up as 'close'; listening keeps them from being unhandled.
    device.on('error', () => undefined)
    upstream.on('error', (err: Error & { code?: string }) => { upstreamError ??= err.code ?? err.message })
    device.once('close', onClose('device'))
    upstream.once('close', onClose('upstream'))
    upstream.pipe(device)
    if (filter === undefined) { device.pipe(upstream); return }
    device.on('data', (chunk: Buffer) => {
      if (ended !== undefined) return
      const r = filter(chunk)
      let ok = true
      for (const b of r.out) ok = upstream.write(b)
      if (r.detail === undefined) {
        if (!ok) device.pause()
        return
      }
      ended = { by: 'protocol', detail: r.detail }
      upstream.end()
      if (r.farewell === undefined) device.destroy()
      else {
        device.end(r.farewell)
        setTimeout(() => device.destroy(), 1000).unref()
      }
    })
    upstream.on('drain', () => { device.resume() })
    device.once('end', () => { upstream.end() })
    device.resume()
  })
}

/** `tcp` mode: the device's bytes, unchanged, after an optional PROXY header. */
export function createTcpForwarder (opts: { target: HostPort, connectTimeoutMs: number, health: UpstreamHealth,
  preamble?: ((device: DeviceConnection) => Buffer) | undefined }): Forwarder {
  return {
    open: async (device) => {
      const c = await connectUpstream(opts.target, opts.connectTimeoutMs, opts.health)
      if (!c.ok) return c
      if (opts.preamble !== undefined && !device.socket.destroyed) c.upstream.write(opts.preamble(device))
      return { ok: true, connectSeconds: c.connectSeconds, serve: async () => await pump(device.socket, c.upstream),
        abandon: () => { c.upstream.destroy() }, close: () => { device.socket.destroy() } }
    },
    // A byte stream has no words for "refused": the connection closes.
    refuse: async (socket) => { await (socket.writableEnded ? endWith(socket) : destroyed(socket)) },
    drain: () => undefined,
    close: async () => undefined
  }
}
