// Every metric certgate exports, declared once. Prometheus naming, `certgate_` prefix, closed
// label sets (no deviceIds or fingerprints), reasons pre-registered at zero so dashboards show
// lines rather than gaps. Only importer of prom-client.
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { CRL_FETCH_OUTCOMES, type CrlFetchOutcome } from './control/crl-fetcher.js'
import { OCSP_STATUSES, type OcspStatus } from './ocsp/ocsp-checker.js'
import { OCSP_FAILURES, type OcspFailureReason } from './ocsp/ocsp-response.js'
import { CLOSE_REASONS, HANDSHAKE_FAILURES, HTTP_OUTCOMES, REFUSAL_REASONS, type CloseReason, type HandshakeFailure, type HttpOutcome, type RefusalReason } from './reasons.js'

/** What the registry holds, read at scrape time. */
export interface FleetSnapshot {
  readonly cas: ReadonlyArray<{ readonly name: string, readonly isVerified: boolean, readonly notAfter: string }>
  readonly devices: Readonly<Record<'enabled' | 'disabled', number>>
}

/** What the revocation snapshot in force holds (deny-list size; per CA, its CRL's times in ms and size). */
export interface RevocationInForce {
  readonly denied: number
  readonly crls: ReadonlyArray<{ readonly ca: string, readonly thisUpdate: number, readonly nextUpdate: number | undefined, readonly revoked: number }>
}

export interface Metrics {
  readonly registry: Registry
  /** The deny-list and CRLs now applied (read at scrape time for the CRL age gauges). */
  setRevocation: (r: RevocationInForce) => void
  connectionAccepted: (listener: string) => void
  handshakeFailed: (listener: string, bucket: HandshakeFailure) => void
  authenticated: (listener: string, seconds: number) => void
  refused: (listener: string, reason: RefusalReason, seconds: number) => void
  validated: (r: { micros: number, cacheHits: number, cacheMisses: number, cacheSize: number }) => void
  liveClosed: (listener: string, reason: CloseReason) => void
  upstreamConnected: (listener: string, seconds: number) => void
  /** A connection attempt to the upstream failed. */
  upstreamFailed: (listener: string) => void
  /** The upstream is reachable (1) or known to be down, devices refused without trying (0). */
  setUpstreamUp: (listener: string, up: boolean) => void
  /** The device left before certgate decided (no verdict to count). */
  abandoned: (listener: string) => void
  /** Applying a registry change to live connections failed: revoked devices may still be connected. */
  revocationFailed: () => void
  /** A background CRL fetch for a registered CA, by outcome. */
  crlFetched: (ca: string, outcome: CrlFetchOutcome) => void
  /** One exchange with a CA's OCSP responder: the answer's status (or `failed`, with why) and how long it took. */
  ocspExchanged: (ca: string, status: OcspStatus, seconds: number, failure?: OcspFailureReason) => void
  /** Remaining lifetime of a device certificate seen at connect. */
  certificateLifetime: (seconds: number) => void
  forwarded: (listener: string, fromDevice: number, toDevice: number) => void
  /** An HTTP request (or WebSocket upgrade) from a device in http mode, by outcome. */
  httpRequest: (listener: string, outcome: HttpOutcome) => void
  /** Where the live-connection gauge reads its counts at scrape time (nothing is set per connection). */
  countLiveWith: (count: (listener: string) => number) => void
  /** An enrollment group registered a device on its first connection. */
  deviceRegistered: (enrollmentGroupId: string) => void
  setPool: (s: { queueSize: number, utilization: number, running: number }) => void
  /** The server certificate a listener now serves: its notAfter (ms since the epoch). */
  serverCertificate: (listener: string, notAfter: number) => void
  /** A changed server certificate file was served (`reloaded`) or refused, the last good pair kept (`failed`). */
  serverCertificateReload: (listener: string, outcome: 'reloaded' | 'failed') => void
  metricsText: () => Promise<string>
}

/** Groups are operator-named and few, but a label set must stay bounded: past this many, `other`. */
export const MAX_GROUP_LABELS = 20

/** How often the event-loop delay (certgate_process_nodejs_eventloop_lag_*) is sampled. */
export const EVENT_LOOP_SAMPLE_MS = 100

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

const DAY = 86_400
const LIFETIME_BUCKETS = [1, 7, 30, 90, 180, 365, 730, 1825].map((d) => d * DAY)

/**
 * Observations a histogram's batch holds before they are handed to prom-client unasked. A scrape
 * hands them over first, so what it reads is never behind.
 */
export const OBSERVATIONS_HELD = 1024

/**
 * Observations of one series as plain numbers, handed to prom-client in one go when the metrics
 * are read or OBSERVATIONS_HELD have gathered. A prom-client update hashes and checks its labels
 * each time (a few µs in place on the handshake path); the connection's part here is a store.
 */
class Observations {
  private readonly values = new Float64Array(OBSERVATIONS_HELD)
  private held = 0
  constructor (private readonly into: (value: number) => void) {}
  add (value: number): void {
    if (!Number.isFinite(value)) return // prom-client would throw at the next scrape; a statistic is not worth that
    this.values[this.held++] = value
    if (this.held === OBSERVATIONS_HELD) this.drain()
  }

  drain (): void {
    const n = this.held
    this.held = 0
    for (let i = 0; i < n; i++) this.into(this.values[i] as number)
  }
}

/** What each authenticated connection counts, per listener, until the metrics are read. */
interface ListenerTally {
  accepted: number
  authenticated: number
  fromDevice: number
  toDevice: number
  readonly authSeconds: Observations
  readonly upstreamSeconds: Observations
}

export function createMetrics (listeners: readonly string[], fleet: () => Promise<FleetSnapshot>): Metrics {
  // Registration order is the exposition's order: keep it.
  const registry = new Registry()
  // The event-loop delay monitor samples on a timer: prom-client's default (every 10 ms) wakes an
  // idle gateway 100 times a second, ~11 ms of CPU per second on Node 22; 100 ms costs a tenth of that.
  collectDefaultMetrics({ register: registry, prefix: 'certgate_process_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS })
  const events = eventMetrics(registry, listeners)
  fleetGauges(registry, fleet)
  const served = serverCertificateMetrics(registry)
  const revocation = revocationGauges(registry)
  const ocspExchanged = ocspMetrics(registry)
  for (const listener of listeners) zeroForListener(listener, events, served)
  return { ...recorders(registry, events, served, revocation), ocspExchanged }
}

/** OCSP exchanges per CA with responders (one label value per CA with OCSP settings: operator-chosen, so bounded). */
function ocspMetrics (registry: Registry): Metrics['ocspExchanged'] {
  const r = { registers: [registry] }
  const responses = new Counter({ name: 'certgate_ocsp_responses_total', help: 'OCSP responder exchanges per CA, by the answer\'s status: good, revoked, unknown, or failed (no usable answer)', labelNames: ['ca', 'status'], ...r })
  const failures = new Counter({ name: 'certgate_ocsp_failures_total', help: 'OCSP exchanges without a usable answer, per CA, by why', labelNames: ['ca', 'reason'], ...r })
  const seconds = new Histogram({ name: 'certgate_ocsp_response_seconds', help: 'Time for one OCSP responder exchange (request to checked answer, or failure)', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], ...r })
  const seen = new Set<string>()
  return (ca, status, s, failure) => {
    if (!seen.has(ca)) {
      seen.add(ca)
      for (const st of OCSP_STATUSES) responses.inc({ ca, status: st }, 0)
      for (const reason of OCSP_FAILURES) failures.inc({ ca, reason }, 0)
    }
    responses.inc({ ca, status })
    if (failure !== undefined) failures.inc({ ca, reason: failure })
    seconds.observe(s)
  }
}

/** What certgate's own code counts and times. */
function eventMetrics (registry: Registry, listeners: readonly string[]) {
  // What connections counted as plain numbers (recorders below) reaches these series before any is read.
  const batched = { drain: (): void => undefined }
  const r = { registers: [registry] }
  const drainedFirst = { ...r, collect () { batched.drain() } }
  const accepted = new Counter({ name: 'certgate_connections_accepted_total', help: 'TCP connections accepted on a device listener', labelNames: ['listener'], ...drainedFirst })
  const handshakeFailed = new Counter({ name: 'certgate_handshakes_failed_total', help: 'TLS handshakes that failed, by bucket', labelNames: ['listener', 'bucket'], ...r })
  const auth = new Counter({ name: 'certgate_auth_total', help: 'Authentication outcomes after a completed TLS handshake', labelNames: ['listener', 'result', 'reason'], ...drainedFirst })
  const authSeconds = new Histogram({ name: 'certgate_auth_duration_seconds', help: 'From TLS handshake done to the authentication decision', labelNames: ['listener', 'result'], buckets: LATENCY_BUCKETS, ...drainedFirst })
  const validationSeconds = new Histogram({ name: 'certgate_validation_duration_seconds', help: 'Chain validation time inside a pool worker', buckets: LATENCY_BUCKETS, ...drainedFirst })
  const cacheHits = new Counter({ name: 'certgate_intermediate_cache_hits_total', help: 'Verified-intermediate cache hits', ...drainedFirst })
  const cacheMisses = new Counter({ name: 'certgate_intermediate_cache_misses_total', help: 'Verified-intermediate cache misses', ...drainedFirst })
  const cacheSize = new Gauge({ name: 'certgate_intermediate_cache_entries', help: 'Entries in the verified-intermediate cache of the last worker that reported (the largest, across processes)', aggregator: 'max', ...drainedFirst })
  const liveCount: { of: (listener: string) => number } = { of: () => 0 }
  const live = new Gauge({
    name: 'certgate_live_connections',
    help: 'Authenticated connections open now',
    labelNames: ['listener'],
    ...r,
    collect () { for (const listener of listeners) this.set({ listener }, liveCount.of(listener)) }
  })
  const liveClosed = new Counter({ name: 'certgate_live_connections_closed_total', help: 'Authenticated connections certgate closed, by reason', labelNames: ['listener', 'reason'], ...r })
  const upstreamSeconds = new Histogram({ name: 'certgate_upstream_connect_duration_seconds', help: 'Time to open the upstream TCP connection (from connect() to connected)', labelNames: ['listener'], buckets: LATENCY_BUCKETS, ...drainedFirst })
  const bytes = new Counter({ name: 'certgate_forwarded_bytes_total', help: 'Bytes forwarded, by direction', labelNames: ['listener', 'direction'], ...drainedFirst })
  const poolQueue = new Gauge({ name: 'certgate_pool_queue_depth', help: 'Validations waiting for a worker', ...r })
  // With several processes (CERTGATE_PROCESSES) counters and histograms are summed across them;
  // a ratio is averaged, and the registry-derived gauges (fleetGauges) are taken from one process.
  const poolUtil = new Gauge({ name: 'certgate_pool_utilization_ratio', help: 'Busy share of the validation pool threads (0-1) over the last second: the time each had a message out, averaged', aggregator: 'average', ...r })
  const poolRunning = new Gauge({ name: 'certgate_pool_running_validations', help: 'Validations submitted and not yet finished', ...r })
  const abandoned = new Counter({ name: 'certgate_connections_abandoned_total', help: 'Devices that left after the TLS handshake, before the authentication decision', labelNames: ['listener'], ...r })
  const revocationErrors = new Counter({ name: 'certgate_revocation_errors_total', help: 'Registry changes that could not be applied to live connections (revoked devices may still be connected)', ...r })
  const upstreamFailures = new Counter({ name: 'certgate_upstream_connect_failures_total', help: 'Upstream connection attempts that failed (devices refused while the upstream is known down make none)', labelNames: ['listener'], ...r })
  const upstreamUp = new Gauge({ name: 'certgate_upstream_up', help: '1 while the upstream is reachable; 0 while it is known down and new devices are refused at once', labelNames: ['listener'], ...r })
  const registered = new Counter({ name: 'certgate_devices_registered_total', help: `Devices registered by an enrollment group on their first connection, by group (the first ${MAX_GROUP_LABELS} groups seen; the rest as "other")`, labelNames: ['group'], ...r })
  const groupLabels = new Set<string>()
  const groupLabel = (id: string): string => {
    if (groupLabels.has(id)) return id
    if (groupLabels.size >= MAX_GROUP_LABELS || id === 'other') return 'other'
    groupLabels.add(id)
    return id
  }
  registered.inc({ group: 'other' }, 0)
  // One label value per registered CA that names a CRL distribution point (operator-chosen, so bounded).
  const crlFetches = new Counter({ name: 'certgate_crl_fetches_total', help: 'Background CRL fetches per CA, by outcome: updated (a newer CRL stored), unchanged (the held one or an older one), failed', labelNames: ['ca', 'outcome'], ...r })
  const crlFetchCas = new Set<string>()
  const httpRequests = new Counter({ name: 'certgate_http_requests_total', help: 'Requests from devices in http mode, by outcome: the upstream status class, or why certgate answered itself', labelNames: ['listener', 'outcome'], ...r })
  const lifetime = new Histogram({ name: 'certgate_device_certificate_remaining_seconds', help: 'Remaining lifetime of device certificates seen at connect (fleet-wide)', buckets: LIFETIME_BUCKETS, ...drainedFirst })
  return {
    accepted, handshakeFailed, auth, authSeconds, validationSeconds, cacheHits, cacheMisses, cacheSize, live, liveCount, liveClosed, upstreamSeconds, bytes,
    poolQueue, poolUtil, poolRunning, abandoned, revocationErrors, upstreamFailures, upstreamUp, registered, groupLabel,
    crlFetches, crlFetchCas, httpRequests, lifetime, batched
  }
}

type EventMetrics = ReturnType<typeof eventMetrics>

/** What the registry holds: CAs and devices. */
function fleetGauges (registry: Registry, fleet: () => Promise<FleetSnapshot>): void {
  // Registry-derived gauges are read when Prometheus scrapes, so they are never stale.
  let lastFleet: Promise<FleetSnapshot> | undefined
  const snapshot = async (): Promise<FleetSnapshot> => {
    lastFleet ??= fleet().finally(() => { lastFleet = undefined })
    return await lastFleet
  }
  new Gauge({
    name: 'certgate_registered_cas',
    help: 'Registered CA certificates by verification state',
    labelNames: ['state'],
    registers: [registry],
    aggregator: 'first',
    async collect () {
      const { cas } = await snapshot()
      this.set({ state: 'verified' }, cas.filter((c) => c.isVerified).length)
      this.set({ state: 'unverified' }, cas.filter((c) => !c.isVerified).length)
    }
  })
  new Gauge({
    name: 'certgate_trusted_cas',
    help: 'Verified, unexpired CAs devices may chain to',
    registers: [registry],
    aggregator: 'first',
    async collect () {
      const { cas } = await snapshot()
      this.set(cas.filter((c) => c.isVerified && Date.parse(c.notAfter) > Date.now()).length)
    }
  })
  new Gauge({
    name: 'certgate_devices',
    help: 'Registered devices by status',
    labelNames: ['status'],
    registers: [registry],
    aggregator: 'first',
    async collect () {
      const { devices } = await snapshot()
      this.set({ status: 'enabled' }, devices.enabled)
      this.set({ status: 'disabled' }, devices.disabled)
    }
  })
  new Gauge({
    name: 'certgate_ca_expiry_seconds',
    help: 'Seconds until each registered CA certificate expires (negative: expired)',
    labelNames: ['ca'],
    registers: [registry],
    aggregator: 'first',
    async collect () {
      const { cas } = await snapshot()
      this.reset()
      for (const c of cas) this.set({ ca: c.name }, Math.round((Date.parse(c.notAfter) - Date.now()) / 1000))
    }
  })
}

/** The server certificate each device listener serves (its notAfter, by listener), and its reloads. */
interface ServedMetrics { readonly notAfter: Map<string, number>, readonly reloads: Counter }

function serverCertificateMetrics (registry: Registry): ServedMetrics {
  const r = { registers: [registry] }
  const servedNotAfter = new Map<string, number>()
  new Gauge({
    name: 'certgate_server_certificate_expiry_seconds',
    help: 'Seconds until the server certificate each device listener serves expires (the soonest across processes)',
    labelNames: ['listener'],
    registers: [registry],
    aggregator: 'min',
    collect () {
      for (const [listener, notAfter] of servedNotAfter) this.set({ listener }, Math.round((notAfter - Date.now()) / 1000))
    }
  })
  const reloads = new Counter({ name: 'certgate_server_certificate_reloads_total', help: 'Server certificate file changes (or SIGHUPs) by outcome: reloaded, or failed with the last good pair kept', labelNames: ['listener', 'outcome'], ...r })
  return { notAfter: servedNotAfter, reloads }
}

/** One value per CA from its CRLs (its own and delegated ones): `fold` picks the worst or sums. */
function perCa (r: RevocationInForce, value: (c: RevocationInForce['crls'][number]) => number | undefined, fold: (a: number, b: number) => number): Map<string, number> {
  const out = new Map<string, number>()
  for (const c of r.crls) {
    const v = value(c)
    if (v === undefined) continue
    const held = out.get(c.ca)
    out.set(c.ca, held === undefined ? v : fold(held, v))
  }
  return out
}

/** The deny-list and CRLs in force; `set` when a snapshot is applied. */
function revocationGauges (registry: Registry): { set: (r: RevocationInForce) => void } {
  // Revocation in force: set when a snapshot is applied; ages computed at scrape time.
  let revocation: RevocationInForce = { denied: 0, crls: [] }
  new Gauge({ name: 'certgate_denied_certificates', help: 'Certificate thumbprints on the deny-list', registers: [registry], aggregator: 'first', collect () { this.set(revocation.denied) } })
  new Gauge({
    name: 'certgate_crl_age_seconds',
    help: 'Seconds since the thisUpdate of the CRL held for each CA (with CRLs of intermediates under it too: the oldest)',
    labelNames: ['ca'],
    registers: [registry],
    aggregator: 'first',
    collect () { this.reset(); for (const [ca, v] of perCa(revocation, (c) => Date.now() - c.thisUpdate, Math.max)) this.set({ ca }, Math.round(v / 1000)) }
  })
  new Gauge({
    name: 'certgate_crl_next_update_seconds',
    help: 'Seconds until the nextUpdate of the CRL held for each CA (negative: overdue; absent when the CRL names none; with CRLs of intermediates under it too: the soonest)',
    labelNames: ['ca'],
    registers: [registry],
    aggregator: 'first',
    collect () { this.reset(); for (const [ca, v] of perCa(revocation, (c) => c.nextUpdate === undefined ? undefined : c.nextUpdate - Date.now(), Math.min)) this.set({ ca }, Math.round(v / 1000)) }
  })
  new Gauge({
    name: 'certgate_crl_revoked_certificates',
    help: 'Serials listed in the CRLs held for each CA (its own and those of intermediates under it)',
    labelNames: ['ca'],
    registers: [registry],
    aggregator: 'first',
    collect () { this.reset(); for (const [ca, v] of perCa(revocation, (c) => c.revoked, (a, b) => a + b)) this.set({ ca }, v) }
  })
  return { set: (r) => { revocation = r } }
}

/** Every labelled series of a listener, pre-registered at zero. */
function zeroForListener (listener: string, events: EventMetrics, served: ServedMetrics): void {
  for (const outcome of ['reloaded', 'failed']) served.reloads.inc({ listener, outcome }, 0)
  events.accepted.inc({ listener }, 0)
  events.live.set({ listener }, 0)
  for (const bucket of HANDSHAKE_FAILURES) events.handshakeFailed.inc({ listener, bucket }, 0)
  events.auth.inc({ listener, result: 'authenticated', reason: 'none' }, 0)
  for (const reason of REFUSAL_REASONS) events.auth.inc({ listener, result: 'refused', reason }, 0)
  for (const reason of CLOSE_REASONS) events.liveClosed.inc({ listener, reason }, 0)
  for (const result of ['authenticated', 'refused']) events.authSeconds.zero({ listener, result })
  events.upstreamSeconds.zero({ listener })
  for (const direction of ['from_device', 'to_device']) events.bytes.inc({ listener, direction }, 0)
  events.upstreamFailures.inc({ listener }, 0)
  events.upstreamUp.set({ listener }, 1)
  for (const outcome of HTTP_OUTCOMES) events.httpRequests.inc({ listener, outcome }, 0)
  events.abandoned.inc({ listener }, 0)
}

/** The Metrics interface over the metrics above. */
function recorders (registry: Registry, events: EventMetrics, served: ServedMetrics, revocation: { set: (r: RevocationInForce) => void }): Omit<Metrics, 'ocspExchanged'> {
  // Every authenticated connection's statistics are kept as plain numbers (no labels hashed on
  // the handshake path) and handed over when the metrics are read; refusals and rarer events go
  // straight to prom-client.
  const tallies = new Map<string, ListenerTally>()
  const tallyOf = (listener: string): ListenerTally => {
    let t = tallies.get(listener)
    if (t === undefined) {
      const authenticated = { listener, result: 'authenticated' }
      const upstream = { listener }
      t = {
        accepted: 0,
        authenticated: 0,
        fromDevice: 0,
        toDevice: 0,
        authSeconds: new Observations((v) => { events.authSeconds.observe(authenticated, v) }),
        upstreamSeconds: new Observations((v) => { events.upstreamSeconds.observe(upstream, v) })
      }
      tallies.set(listener, t)
    }
    return t
  }
  const validation = { seconds: new Observations((v) => { events.validationSeconds.observe(v) }), hits: 0, misses: 0, lastSize: -1 }
  const lifetime = new Observations((v) => { events.lifetime.observe(v) })
  events.batched.drain = () => {
    for (const [listener, t] of tallies) {
      if (t.accepted > 0) events.accepted.inc({ listener }, t.accepted)
      if (t.authenticated > 0) events.auth.inc({ listener, result: 'authenticated', reason: 'none' }, t.authenticated)
      if (t.fromDevice > 0) events.bytes.inc({ listener, direction: 'from_device' }, t.fromDevice)
      if (t.toDevice > 0) events.bytes.inc({ listener, direction: 'to_device' }, t.toDevice)
      t.accepted = t.authenticated = t.fromDevice = t.toDevice = 0
      t.authSeconds.drain()
      t.upstreamSeconds.drain()
    }
    validation.seconds.drain()
    if (validation.hits > 0) events.cacheHits.inc(validation.hits)
    if (validation.misses > 0) events.cacheMisses.inc(validation.misses)
    if (validation.lastSize >= 0) events.cacheSize.set(validation.lastSize)
    validation.hits = validation.misses = 0
    validation.lastSize = -1
    lifetime.drain()
  }
  return {
    registry,
    setRevocation: (r) => { revocation.set(r) },
    connectionAccepted: (listener) => { tallyOf(listener).accepted++ },
    handshakeFailed: (listener, bucket) => { events.handshakeFailed.inc({ listener, bucket }) },
    authenticated: (listener, seconds) => {
      const t = tallyOf(listener)
      t.authenticated++
      t.authSeconds.add(seconds)
    },
    refused: (listener, reason, seconds) => {
      events.auth.inc({ listener, result: 'refused', reason })
      events.authSeconds.observe({ listener, result: 'refused' }, seconds)
    },
    validated: (v) => {
      validation.seconds.add(v.micros / 1e6)
      validation.hits += v.cacheHits
      validation.misses += v.cacheMisses
      validation.lastSize = v.cacheSize
    },
    liveClosed: (listener, reason) => { events.liveClosed.inc({ listener, reason }) },
    upstreamConnected: (listener, seconds) => { tallyOf(listener).upstreamSeconds.add(seconds) },
    upstreamFailed: (listener) => { events.upstreamFailures.inc({ listener }) },
    setUpstreamUp: (listener, up) => { events.upstreamUp.set({ listener }, up ? 1 : 0) },
    abandoned: (listener) => { events.abandoned.inc({ listener }) },
    revocationFailed: () => { events.revocationErrors.inc() },
    crlFetched: (ca, outcome) => {
      if (!events.crlFetchCas.has(ca)) { events.crlFetchCas.add(ca); for (const o of CRL_FETCH_OUTCOMES) events.crlFetches.inc({ ca, outcome: o }, 0) }
      events.crlFetches.inc({ ca, outcome })
    },
    certificateLifetime: (seconds) => { lifetime.add(seconds) },
    forwarded: (listener, fromDevice, toDevice) => {
      const t = tallyOf(listener)
      t.fromDevice += fromDevice
      t.toDevice += toDevice
    },
    httpRequest: (listener, outcome) => { events.httpRequests.inc({ listener, outcome }) },
    countLiveWith: (count) => { events.liveCount.of = count },
    deviceRegistered: (id) => { events.registered.inc({ group: events.groupLabel(id) }) },
    setPool: (s) => { events.poolQueue.set(s.queueSize); events.poolUtil.set(s.utilization); events.poolRunning.set(s.running) },
    serverCertificate: (listener, notAfter) => { served.notAfter.set(listener, notAfter) },
    serverCertificateReload: (listener, outcome) => { served.reloads.inc({ listener, outcome }) },
    metricsText: async () => await registry.metrics()
  }
}

/** In a process of a group (CERTGATE_PROCESSES > 1): answer the group's requests for this process's metrics. */
export function shareWithGroup (metrics: Metrics): void {
  // Constructing one in a cluster worker installs the listener that answers the primary.
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([metrics.registry])
}

/** In the group's primary: every process's metrics, summed (or as each metric's aggregator says). */
export function groupMetrics (): () => Promise<string> {
  const aggregator = new AggregatorRegistry()
  return async () => await aggregator.clusterMetrics()
}
