// `http` mode: certgate speaks HTTP/1.1 to the authenticated device and forwards each request to
// the upstream through a pooled keep-alive undici client, streaming bodies both ways. The upstream
// learns who is asking from x-certgate-device-id and x-forwarded-client-cert (Envoy's format);
// copies a device sends of these, or of any x-certgate-* header, are dropped first. Failures are
// answered 502 (unreachable, reset) or 504 (too slow), 503 at once while the upstream is known
// down, each with a JSON reason. A WebSocket upgrade is passed through to the upstream with the
// same identity headers, then pumped; by default its payload is MQTT held to mqtt mode's rules
// (CONNECT clientId = deviceId, username policy, no second CONNECT).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { EventEmitter } from 'node:events'
import { Pool } from 'undici'
import { connectUpstream, endWith, pump, type DeviceConnection, type Ended, type Forwarder, type HostPort, type Opened } from './forwarder.js'
import { createHttpRefusals } from './http-refusal.js'
import type { UpstreamHealth } from './upstream-health.js'
import { xfccValue } from './xfcc.js'
import { webSocketMqttFilter } from './websocket-mqtt.js'
import { sanitize } from '../proxy-protocol/v2-header.js'
import type { HttpOutcome } from '../reasons.js'
import { ownedHeader } from './identity-headers.js'
import { errorMessage } from '../../workers/errors.js'


export interface HttpForwarderOptions {
  readonly upstream: HostPort
  readonly health: UpstreamHealth
  readonly connectTimeoutMs: number
  /** How long the upstream may take to send its response headers, and between body chunks. */
  readonly upstreamTimeoutMs: number
  /** Put the certificate and chain (URL-encoded PEM) in x-forwarded-client-cert. */
  readonly forwardChain: boolean
  /** WebSocket payloads: 'mqtt' holds them to mqtt mode's CONNECT rules; 'opaque' passes them unchecked. */
  readonly websocketPayload: 'mqtt' | 'opaque'
  /** MQTT over WebSockets: the CONNECT username becomes the deviceId. */
  readonly mqttUsernameIsDeviceId: boolean
  /** Most keep-alive connections to the upstream. */
  readonly maxUpstreamConnections: number
  readonly onRequest: (outcome: HttpOutcome) => void
  readonly onFailure: (f: { deviceId: string, outcome: HttpOutcome, detail: string }) => void
  /** How long a refused device may take to send the request its refusal answers. */
  readonly refusalTimeoutMs: number
}

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), and `expect` (answered here). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate',
  'proxy-authorization', 'expect', 'http2-settings'])
const INSPECTED_WEBSOCKET: ReadonlySet<string> = new Set(['sec-websocket-extensions'])
const NOTHING: ReadonlySet<string> = new Set()

interface DeviceHttp {
  readonly deviceId: string
  readonly xfcc: string
  readonly forwardedFor: string
  /** How the connection ended, when an upgraded stream's upstream ended it. */
  ended: Ended | undefined
  /** Requests (or an upgrade) in progress: a connection with none is idle. */
  busy: number
}

/**
 * The device's headers minus the ones certgate owns (identity-headers.ts), plus certgate's identity headers; minus hop-by-hop ones
 * too, except for an upgrade, whose Connection/Upgrade headers are the point.
 */
function upstreamHeaders (req: IncomingMessage, device: DeviceHttp, upgrade: 'none' | 'mqtt' | 'opaque'): string[] {
  // An inspected WebSocket negotiates no extension (a compressed payload could not be checked).
  const dropped = upgrade === 'none' ? HOP_BY_HOP : upgrade === 'mqtt' ? INSPECTED_WEBSOCKET : NOTHING
  // Node has already joined and lowercased the Connection header for us.
  const named = upgrade === 'none' ? req.headers.connection?.toLowerCase().split(',').map((t) => t.trim()) : undefined
  const raw = req.rawHeaders
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    if (ownedHeader(name) || dropped.has(name) || named?.includes(name) === true) continue
    out.push(raw[i] as string, raw[i + 1] as string)
  }
  out.push('x-certgate-device-id', device.deviceId, 'x-forwarded-client-cert', device.xfcc, 'x-forwarded-for', device.forwardedFor,
    'x-forwarded-proto', 'https')
  return out
}

function errorBody (code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}

/** What every request and upgrade through one forwarder shares. */
interface Forwarding {
  readonly opts: HttpForwarderOptions
  /** host:port of the upstream, IPv6 bracketed. */
  readonly target: string
  readonly pool: Pool
  readonly devices: WeakMap<Socket, DeviceHttp>
  /** Served connections, so shutdown can let the idle ones go at once. */
  readonly served: Set<Socket>
  draining: boolean
}

export function createHttpForwarder (opts: HttpForwarderOptions): Forwarder {
  const target = `${opts.upstream.host.includes(':') ? `[${opts.upstream.host}]` : opts.upstream.host}:${opts.upstream.port}`
  const pool = upstreamPool(target, opts)
  const devices = new WeakMap<Socket, DeviceHttp>()
  const refusals = createHttpRefusals(opts.refusalTimeoutMs)
  const f: Forwarding = { opts, target, pool, devices, served: new Set<Socket>(), draining: false }
  const server = deviceServer(f)

  return {
    open: async (device: DeviceConnection) => openDevice(f, server, device),
    refuse: async (socket, refusal) => {
      if (socket.writableEnded) return await endWith(socket)
      if (socket.destroyed) return
      await refusals.answer(socket, refusal)
    },
    drain: () => {
      f.draining = true
      for (const socket of f.served) if ((devices.get(socket)?.busy ?? 0) === 0) void endWith(socket)
    },
    close: async () => { await pool.close() }
  }
}

function upstreamPool (target: string, opts: HttpForwarderOptions): Pool {
  return new Pool(`http://${target}`, {
    connections: opts.maxUpstreamConnections,
    headersTimeout: opts.upstreamTimeoutMs,
    bodyTimeout: opts.upstreamTimeoutMs,
    connect: { timeout: opts.connectTimeoutMs }
  })
}

/** The HTTP server authenticated device sockets are handed to. */
function deviceServer (f: Forwarding): Server {
  const server = createServer({ keepAliveTimeout: 0, requestTimeout: 0, headersTimeout: 60_000 })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => { void forwardRequest(f, req, res) })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => { void forwardUpgrade(f, req, socket, head) })
  // Malformed requests: Node answers 400 (431 for huge headers) and closes; nothing to add.
  return server
}

function answer (f: Forwarding, res: ServerResponse, device: DeviceHttp, status: number, outcome: HttpOutcome, detail: string, extra: Record<string,
  string> = {}): void {
  f.opts.onRequest(outcome)
  f.opts.onFailure({ deviceId: device.deviceId, outcome, detail })
  const body = errorBody(outcome, detail)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-certgate-error': outcome, ...extra }).end(body)
}

async function forwardRequest (f: Forwarding, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { opts, target, pool } = f
  const device = f.devices.get(req.socket)
  if (device === undefined) { req.socket.destroy(); return } // never: only authenticated sockets are handed over
  device.busy++
  res.once('close', () => {
    device.busy--
    if (f.draining && device.busy === 0) void endWith(req.socket) // after the response, which is queued first
  })
  // Shutting down: this is the connection's last response (Connection: close).
  if (f.draining) res.shouldKeepAlive = false
  const refusal = opts.health.admit()
  if (refusal !== undefined) { answer(f, res, device, 503, 'upstream_unavailable', refusal, { 'retry-after': '1' }); return }
  // An EventEmitter as undici's abort signal: an AbortController per request (and stream
  // pipeline(), which makes one) costs a DOMException and an EventTarget every time.
  const abort = new EventEmitter()
  const exchange = { deviceLeft: false }
  res.once('close', () => { if (!res.writableFinished) { exchange.deviceLeft = true; abort.emit('abort') } })
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0'
  let answered: Awaited<ReturnType<Pool['request']>> | undefined
  try {
    answered = await pool.request({
      method: req.method as 'GET',
      path: req.url ?? '/',
      headers: upstreamHeaders(req, device, 'none'),
      body: hasBody ? req : null,
      signal: abort
    })
  } catch (err) {
    const code = (err as { code?: string }).code ?? ''
    if (exchange.deviceLeft) { opts.onRequest('device_aborted'); return }
    if (code === 'UND_ERR_HEADERS_TIMEOUT') { answer(f, res, device, 504, 'upstream_timeout',
      `upstream ${target} sent no response headers within ${opts.upstreamTimeoutMs} ms`); return }
    const unreachable = ['UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(code)
    if (unreachable) opts.health.failed(code)
    answer(f, res, device, 502, 'upstream_unavailable',
      `upstream ${target}: ${unreachable ? 'unreachable' : 'failed before answering'} (${code === '' ? errorMessage(err) : code})`)
    return
  }
  opts.health.succeeded()
  const { statusCode, headers, body } = answered
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  res.writeHead(statusCode, out)
  body.once('error', (err: Error & { code?: string }) => {
    // Headers are out: the only way left to tell the device is to end the connection.
    res.destroy()
    if (exchange.deviceLeft) return
    opts.onRequest('upstream_failed_midway')
    opts.onFailure({ deviceId: device.deviceId, outcome: 'upstream_failed_midway',
      detail: `upstream ${target} failed while sending the response body (${err.code ?? err.message})` })
  })
  res.once('close', () => {
    if (res.writableFinished) opts.onRequest(`${Math.min(5, Math.max(1, Math.floor(statusCode / 100)))}xx` as HttpOutcome)
    else if (exchange.deviceLeft) { body.destroy(); opts.onRequest('device_aborted') }
  })
  body.pipe(res)
}

async function forwardUpgrade (f: Forwarding, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const { opts } = f
  const device = f.devices.get(req.socket)
  if (device === undefined) { socket.destroy(); return }
  device.busy++ // for good: an upgraded connection is never idle
  const answerUpgrade = (status: string, outcome: HttpOutcome, detail: string): void => {
    opts.onRequest(outcome)
    opts.onFailure({ deviceId: device.deviceId, outcome, detail })
    const body = errorBody(outcome, detail)
    socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-certgate-error: ${outcome}\r\nconnection: close\r\n\r\n${body}`)
  }
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') { answerUpgrade('400 Bad Request', 'upgrade_refused',
    `only WebSocket upgrades are forwarded, not "${sanitize(req.headers.upgrade ?? '').slice(0, 64)}"`); return }
  const c = await connectUpstream(opts.upstream, opts.connectTimeoutMs, opts.health)
  if (!c.ok) { answerUpgrade(c.attempted ? '502 Bad Gateway' : '503 Service Unavailable', 'upstream_unavailable', c.detail); return }
  if (socket.destroyed) { c.upstream.destroy(); return }
  // The upgrade's own Connection/Upgrade/Sec-WebSocket-* headers go through as they are.
  const headers = upstreamHeaders(req, device, opts.websocketPayload)
  let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n`
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`
  c.upstream.write(text + '\r\n')
  if (head.length > 0) c.upstream.write(head)
  opts.onRequest('upgraded')
  // Registered before pump's own listener, so it is known before the device side closes.
  c.upstream.once('close', () => { if (!socket.destroyed) device.ended ??= { by: 'upstream', detail: 'the upstream closed the WebSocket connection' } })
  const filter = opts.websocketPayload === 'opaque'
    ? undefined
    : webSocketMqttFilter({
      deviceId: device.deviceId,
      usernameIsDeviceId: opts.mqttUsernameIsDeviceId,
      maxConnectBytes: 256 * 1024,
      onRefused: (reason, detail) => {
        device.ended = { by: 'protocol', detail: `MQTT over WebSocket: ${reason}: ${detail}` }
        opts.onFailure({ deviceId: device.deviceId, outcome: 'upgrade_refused', detail: `MQTT over WebSocket: ${reason}: ${detail}` })
      }
    })
  await pump(socket, c.upstream, filter)
}

/** Takes over one authenticated device socket; serving it hands it to the HTTP server. */
function openDevice (f: Forwarding, server: Server, device: DeviceConnection): Opened {
  const { opts, served } = f
  const { socket, identity } = device
  const state: DeviceHttp = {
    deviceId: sanitize(identity.deviceId),
    xfcc: xfccValue({ leaf: device.sent.leaf, intermediates: device.sent.intermediates, thumbprint: identity.thumbprint, withChain: opts.forwardChain }),
    forwardedFor: device.source.address.replace(/^::ffff:(?=\d+\.)/, ''),
    ended: undefined,
    busy: 0
  }
  f.devices.set(socket, state)
  return {
    ok: true,
    connectSeconds: undefined,
    serve: async () => await new Promise<Ended>((resolve) => {
      served.add(socket)
      socket.once('close', () => { served.delete(socket); resolve(state.ended ?? { by: 'device' }) })
      server.emit('connection', socket)
    }),
    abandon: () => undefined,
    close: () => { socket.destroy() }
  }
}
