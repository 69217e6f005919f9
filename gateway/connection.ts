// The life of one device connection, top to bottom (DESIGN.md §2): read what the device sent,
// validate it in the pool, decide against the registry, open the upstream, track it live, pump.
// Every refusal is a value with a reason from one closed set: logged, counted, and the socket closed.
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { authenticate, type Identity } from './auth/authenticate.js'
import { readPeerChain, type SentChain } from './tls/peer-chain.js'
import type { Endpoint } from './proxy-protocol/v2-header.js'
import type { Peer } from './tls/device-listener.js'
import type { DeviceConnection, Forwarder, Opened } from './upstream/forwarder.js'
import type { LiveConnections, LiveEntry } from './live/live-connections.js'
import type { Metrics } from './metrics.js'
import type { CloseReason, RefusalReason } from './reasons.js'
import type { Registry } from './registry/types.js'
import type { ValidatorPool } from './validation/validator-pool.js'
import type { RefusalMemory } from './auth/refusal-memory.js'
import type { Enrollment } from './auth/enrollment.js'
import type { Revocation } from './live/revocation.js'
import type { OcspChecker } from './ocsp/ocsp-checker.js'
import type { ConnectionCosts, Stopwatch } from './connection-costs.js'

export interface ConnectionContext {
  readonly listener: string
  readonly validator: ValidatorPool
  readonly registry: Registry
  readonly forwarder: Forwarder
  readonly live: LiveConnections
  readonly metrics: Metrics
  readonly log: Logger
  /** Certificates refused moments ago are refused again without validation. */
  readonly refusals: RefusalMemory
  /** Close authenticated connections with no traffic either way for this long (0 = never). */
  readonly idleTimeoutMs: number
  /** Registry changes heard so far, and the recheck of one connection decided across one. */
  readonly revocation: Pick<Revocation, 'generation' | 'stillAllowed'>
  /** Registers unknown devices covered by an enrollment group, on their first connection. */
  readonly enrollment?: Enrollment | undefined
  /** OCSP: answers held refuse at once; a forwarding connection is queried about in the background. */
  readonly ocsp?: Pick<OcspChecker, 'refusal' | 'watch'> | undefined
  /** Counts certgate's own CPU per step when CERTGATE_COST_REPORT_EVERY asks (else does nothing). */
  readonly costs: ConnectionCosts
}

interface DeviceRefusal { readonly reason: RefusalReason, readonly detail: string, readonly deviceId?: string | undefined }

export async function handleConnection (socket: TLSSocket, peer: Peer, ctx: ConnectionContext): Promise<void> {
  const started = performance.now()
  const watch = ctx.costs.start()
  // Read before anything the decision relies on, so a change committed meanwhile is never missed.
  const generation = ctx.revocation.generation()
  const sent = readPeerChain(socket)
  watch.lap('read_chain')
  if (sent === undefined) return refuse(socket, peer, ctx, started, { reason: 'no_client_cert', detail: 'the device presented no client certificate' })
  const recent = ctx.refusals.recall(sent)
  if (recent !== undefined) return refuse(socket, peer, ctx, started, recent)
  const validating = ctx.validator.validate(sent.leaf, sent.intermediates)
  watch.lap('validate')
  const verdict = await validating
  watch.resume()
  const deciding = authenticate(verdict, ctx.registry, ctx.enrollment)
  watch.lap('authorize')
  const decision = await deciding
  watch.resume()
  if (gone(socket)) return ctx.metrics.abandoned(ctx.listener) // the device left while we decided
  if (!decision.ok) {
    // A change heard meanwhile may be what fixes it: remember only refusals decided on current data.
    if (ctx.revocation.generation() === generation) ctx.refusals.remember(sent, decision)
    return refuse(socket, peer, ctx, started, decision)
  }
  const held = ctx.ocsp?.refusal(decision.identity)
  if (held !== undefined) return refuse(socket, peer, ctx, started, { ...held, deviceId: decision.identity.deviceId })
  const live = trackLive(socket, decision.identity, ctx)
  watch.lap('track')
  try {
    // Tracked from here on, so later changes reach it; one heard while deciding is checked now.
    const changed = ctx.revocation.generation() === generation ? undefined : await ctx.revocation.stillAllowed(live.entry)
    if (changed !== undefined) return await refuse(socket, peer, ctx, started, changed)
    if (gone(socket)) return // closed by a change while being rechecked
    await forward(new Device(socket, decision.identity, sent, peer), ctx, started, live, watch)
  } finally {
    watch.resume()
    live.untrack()
    watch.lap('untrack')
    watch.done()
  }
}

/** Opens the way upstream (the forwarder may still refuse), then serves until either side closes. */
async function forward (device: DeviceConnection, ctx: ConnectionContext, started: number, live: Tracked, watch: Stopwatch): Promise<void> {
  const { socket, identity } = device
  const decided = performance.now()
  const opening = ctx.forwarder.open(device)
  watch.lap('open_upstream')
  const opened = await opening
  watch.resume()
  if (!opened.ok) return await refuse(socket, device, ctx, started, { ...opened, deviceId: identity.deviceId })
  if (gone(socket)) { opened.abandon(); return }
  live.closeWith(opened.close)
  if (opened.connectSeconds !== undefined) ctx.metrics.upstreamConnected(ctx.listener, opened.connectSeconds)
  ctx.metrics.authenticated(ctx.listener, (decided - started) / 1000)
  ctx.metrics.certificateLifetime((identity.leafNotAfter - Date.now()) / 1000)
  ctx.log.info({ event: 'authenticated', deviceId: identity.deviceId, authType: identity.authType, ca: identity.caName, remote: device.source.address, listener: ctx.listener }, 'device authenticated')
  ctx.ocsp?.watch(live.entry, device.sent) // never holds the connection: the answer arrives while it serves
  const serving = opened.serve()
  watch.lap('record')
  const ended = await serving
  if (ended.by === 'device') return
  const reason = ended.by === 'upstream' ? 'upstream_closed' : ended.by === 'upstream_refused' ? 'upstream_refused' : 'mqtt_protocol_error'
  ctx.metrics.liveClosed(ctx.listener, reason)
  ctx.log.info({ event: 'closed', reason, detail: ended.detail, deviceId: identity.deviceId, listener: ctx.listener }, 'live connection closed')
}

/** What the forwarder serves. Not a spread of `peer`: that would read its lazy `destination` (a system call) on every connection. */
class Device implements DeviceConnection {
  constructor (readonly socket: TLSSocket, readonly identity: Identity, readonly sent: SentChain, private readonly peer: Peer) {}
  get source (): Endpoint { return this.peer.source }
  get destination (): Endpoint { return this.peer.destination }
}

interface Tracked {
  readonly entry: LiveEntry
  untrack: () => void
  /** Once serving: how certgate closes it (in the protocol's words); until then the socket is destroyed. */
  closeWith: (close: Extract<Opened, { ok: true }>['close']) => void
}

/** Tracks the connection by deviceId so revocation can close it, and counts its bytes. */
function trackLive (socket: TLSSocket, identity: Identity, ctx: ConnectionContext): Tracked {
  let closing: (reason: CloseReason) => void = () => { socket.destroy() }
  let counted = { read: 0, written: 0 }
  const flushBytes = (): void => {
    const now = { read: socket.bytesRead, written: socket.bytesWritten }
    ctx.metrics.forwarded(ctx.listener, now.read - counted.read, now.written - counted.written)
    counted = now
  }
  const entry: LiveEntry = {
    identity,
    listener: ctx.listener,
    openedAt: Date.now(),
    close: (reason, detail) => {
      ctx.log.info({ event: 'closed', reason, detail, deviceId: identity.deviceId, listener: ctx.listener }, 'live connection closed')
      ctx.metrics.liveClosed(ctx.listener, reason)
      closing(reason)
    },
    flushBytes
  }
  const untrack = ctx.live.track(entry)
  if (ctx.idleTimeoutMs > 0) {
    // Any read or write resets it: MQTT keepalives count as traffic.
    socket.setTimeout(ctx.idleTimeoutMs, () => { entry.close('idle', `no traffic for ${ctx.idleTimeoutMs / 1000} s`) })
  }
  return {
    entry,
    closeWith: (close) => { closing = close },
    untrack: () => {
      flushBytes()
      untrack()
    }
  }
}

/** A function, not a property read, so the check is not narrowed away across awaits. */
const gone = (socket: TLSSocket): boolean => socket.destroyed

async function refuse (socket: TLSSocket, peer: Peer, ctx: ConnectionContext, started: number, r: DeviceRefusal): Promise<void> {
  ctx.metrics.refused(ctx.listener, r.reason, (performance.now() - started) / 1000)
  ctx.log.warn({ event: 'refused', reason: r.reason, detail: r.detail, deviceId: r.deviceId, remote: peer.source.address, listener: ctx.listener }, 'device refused')
  // The device is told in its protocol's words (an MQTT CONNACK, an HTTP 403), then closed.
  await ctx.forwarder.refuse(socket, r)
}
