// Wires one gateway process together from a frozen Config: registry, validator pool, forwarder,
// device listener, live connections and revocation, admin listener. Owns start-up order and
// shutdown (stop accepting, drain, close); knows nothing of X.509 rules or TLS details.
import { BlockList, isIPv6 } from 'node:net'
import { createLog, type Logger } from './log.js'
import type { Config, HostPort, ListenerConfig, Protocol } from './config.js'
import { adminToken, ensureDataDir, serverCertificate } from './data-dir.js'
import { openRegistry, type OpenRegistryDeps } from './registry/open-registry.js'
import { withRelayedChanges, type ChangeRelay } from './registry/relayed-changes.js'
import { withDeviceCache } from './registry/device-cache.js'
import type { Registry } from './registry/types.js'
import type { AuditLog } from './registry/audit-log.js'
import { createValidator, type ValidatorPool } from './validation/validator-pool.js'
import { createMetrics, type Metrics } from './metrics.js'
import { createLiveConnections, type LiveConnections } from './live/live-connections.js'
import { startRevocation, type Revocation } from './live/revocation.js'
import { createCertificateRevocation } from './live/certificate-revocation.js'
import { startDeviceListener } from './tls/device-listener.js'
import { startCertificateRotation, type CertificateRotation } from './tls/certificate-rotation.js'
import { createOncePerAddress, type OncePerAddress } from './tls/once-per-address.js'
import type { HandshakeFailure } from './reasons.js'
import { handleConnection, type ConnectionContext } from './connection.js'
import { createConnectionCosts } from './connection-costs.js'
import { createTcpForwarder, type DeviceConnection, type Forwarder } from './upstream/forwarder.js'
import { createMqttForwarder } from './upstream/mqtt-forwarder.js'
import { createUpstreamHealth } from './upstream/upstream-health.js'
import { encodeV2 } from './proxy-protocol/v2-header.js'
import type { EmbeddedBroker } from './upstream/embedded-broker.js'
import { startAdminServer, type AdminServer } from './admin/admin-server.js'
import { createCaService, type CaService } from './control/ca-service.js'
import { createRefusalMemory, type RefusalMemory } from './auth/refusal-memory.js'
import { createEnrollment, type Enrollment } from './auth/enrollment.js'
import { createCertificateRoutes } from './admin/certificate-routes.js'
import { createDeviceRoutes } from './admin/device-routes.js'
import { createImportRoute } from './admin/import-route.js'
import { createRevocationRoutes } from './admin/revocation-routes.js'
import { createCrlService, MAX_CRL_BYTES, type CrlService } from './control/crl-service.js'
import { startCrlFetcher, type CrlFetcher, type CrlFetchTiming } from './control/crl-fetcher.js'
import type { OcspChecker, OcspTiming } from './ocsp/ocsp-checker.js'
import { startOcspFor } from './ocsp/start-ocsp.js'
import { createEnrollmentRoutes } from './admin/enrollment-routes.js'

export interface StartedListener {
  readonly name: string
  readonly protocol: Protocol
  readonly address: HostPort
  readonly upstream: HostPort
}

export interface Gateway {
  /** The first device listener's address. */
  readonly device: HostPort
  readonly listeners: readonly StartedListener[]
  readonly admin: HostPort
  readonly adminToken: string
  readonly registry: Registry
  readonly caService: CaService
  readonly log: Logger
  /** Re-reads the server certificate files now (SIGHUP); they are also watched. */
  reloadServerCertificates: () => void
  /** Stops accepting, waits up to the drain timeout for devices to leave, then closes everything. */
  close: () => Promise<void>
}

/** What a gateway process running in a group (CERTGATE_PROCESSES > 1) gets from the group. */
export interface GroupLink {
  /** Registry changes made by the other processes (used with SQLite; PostgreSQL announces its own). */
  readonly changes: ChangeRelay
  /** Lets the group collect this process's metrics. */
  shareMetrics: (metrics: Metrics) => void
  /** The metrics of every process in the group, as Prometheus text. */
  metricsText: () => Promise<string>
}

/** `broker`: an embedded broker someone else runs (a process group's primary); else one is started here if needed. */
/** `now`: the clock verification codes expire by (tests move it instead of waiting). */
/** `crlFetch`, `ocsp`: timing of background CRL fetching and of OCSP (tests shorten them). */
export async function startGateway (config: Config, deps: {
  log?: Logger, group?: GroupLink, broker?: HostPort | undefined, now?: () => number, crlFetch?: Partial<CrlFetchTiming>, ocsp?: Partial<OcspTiming>
} = {}): Promise<Gateway> {
  // In a process group, every line says which process wrote it.
  const log = deps.log ?? createLog(config.logLevel, { service: 'certgate', ...(deps.group === undefined ? {} : { pid: process.pid }) })
  const { token, tls } = await prepareDataDir(config, log)

  // A balancer's health check sends devices elsewhere while this gateway cannot admit any.
  const health = { registryLost: false, stopping: false }
  const opened = await openRegistry(config, registryHooks(health, log))
  const registry = opened.backend === 'postgres' ? opened.registry
    // SQLite: one process hears its own changes at once (so it may keep device records); a group relays them.
    : deps.group === undefined ? withDeviceCache(opened.registry) : withRelayedChanges(opened.registry, deps.group.changes)
  const metrics = createMetrics(config.listeners.map((l) => l.name), async () => ({ cas: await registry.listCas(), devices: await registry.countDevices() }))
  deps.group?.shareMetrics(metrics)
  const validator = createValidator({ threads: config.workers, maxQueue: config.maxValidationQueue, cacheEntries: config.intermediateCacheEntries }, { onValidated: metrics.validated })
  const live = createLiveConnections({ maxConnectionAgeMs: config.maxConnectionAgeMs })
  metrics.countLiveWith((listener) => live.count(listener))
  const revocation = await startRevocationFor({ registry, live, validator, metrics, log })
  const crls = createCrlService(registry)
  const crlFetcher = startCrlFetcherFor(registry, crls, deps.crlFetch, metrics, log)
  const ocsp = startOcspFor(registry, live, deps.ocsp, metrics, log)
  const { broker, brokerAt } = await startBrokerIfNeeded(config, deps.broker, log)

  const refusals = createRefusalMemory({ ttlMs: config.refusalMemoryMs, maxEntries: 10_000 })
  const handshakeLog = createOncePerAddress({ intervalMs: 60_000, maxAddresses: 10_000 })
  // Any registry change may be the fix for a remembered refusal: forget them all.
  const stopForgetting = registry.onChange((change) => {
    refusals.forget()
    log.debug({ event: 'registry_change', change }, 'registry change heard')
  })
  const enrollment = createEnrollmentFor(registry, opened.audit, metrics, log)
  const devices = await startListeners(config, { tls, brokerAt, validator, registry, live, metrics, log, refusals, handshakeLog, revocation, enrollment, ocsp })
  const poolGauges = setInterval(() => {
    metrics.setPool(validator.stats())
    for (const e of live.all()) e.flushBytes()
  }, 1000)
  poolGauges.unref()

  const caService = createCaService(registry, { verificationCodeTtlMs: config.verificationCodeTtlMs, ...(deps.now === undefined ? {} : { now: deps.now }) })
  const admin = await startAdmin(config, { token, health, group: deps.group, metrics, registry, caService, crls, live, audit: opened.audit })

  return {
    device: (devices.started[0] as StartedListener).address,
    listeners: devices.started.map(({ name, protocol, address, upstream }) => ({ name, protocol, address, upstream })),
    admin: admin.address,
    adminToken: token,
    registry,
    caService,
    log,
    reloadServerCertificates: () => { for (const r of devices.rotations) r.reload() },
    close: async () => {
      health.stopping = true
      await closeGateway(config, { devices, poolGauges, live, crlFetcher, ocsp, revocation, stopForgetting, enrollment, admin, broker, validator, registry })
    }
  }
}

async function prepareDataDir (config: Config, log: Logger): Promise<{ token: string, tls: ServerPair }> {
  ensureDataDir(config.dataDir)
  const token = adminToken(config.dataDir, config.adminToken)
  const tls = await serverCertificate(config.dataDir, config.tlsCertFile, config.tlsKeyFile)
  if (tls.generated) log.warn({ dataDir: config.dataDir, ...(tls.regenerated === undefined ? {} : { regenerated: tls.regenerated }) }, 'using a generated development server certificate; set CERTGATE_TLS_CERT and CERTGATE_TLS_KEY in production')
  return { token, tls }
}

type ServerPair = Awaited<ReturnType<typeof serverCertificate>>

/** Whether the gateway can admit devices (its admin health check says so). */
interface GatewayHealth { registryLost: boolean, stopping: boolean }

function registryHooks (health: GatewayHealth, log: Logger): OpenRegistryDeps {
  return {
    onState: (s) => {
      health.registryLost = s.state === 'lost'
      if (s.state === 'lost') log.error({ event: 'registry_lost', err: s.error, retryInMs: s.retryInMs }, 'lost the PostgreSQL registry: refusing new devices until it is back (connected devices stay)')
      else log.warn({ event: 'registry_restored' }, 'PostgreSQL registry reachable again: rechecking live devices and trusted CAs')
    },
    onAuditError: (err) => { log.error({ err }, 'an audit record could not be written') }
  }
}

async function startRevocationFor (d: { registry: Registry, live: LiveConnections, validator: ValidatorPool, metrics: Metrics, log: Logger }): Promise<Revocation> {
  const { registry, live, validator, metrics, log } = d
  return await startRevocation({
    registry,
    live,
    setTrusted: (cas) => {
      validator.setTrusted(cas)
      log.debug({ event: 'trust_updated', cas: cas.length }, 'trusted CAs reloaded')
    },
    certificates: createCertificateRevocation({
      registry,
      live,
      setRevocation: (data) => { validator.setRevocation(data) },
      onBadCrl: (ca, err) => { log.error({ err, ca }, 'a stored CRL does not parse and is not applied') },
      onApplied: (inForce) => {
        metrics.setRevocation(inForce)
        log.debug({ event: 'revocation_updated', denied: inForce.denied, crls: inForce.crls.length }, 'deny-list and CRLs reloaded')
      }
    }),
    onError: (err) => { metrics.revocationFailed(); log.error({ err }, 'applying a registry change failed: revoked devices may still be connected') }
  })
}

function startCrlFetcherFor (registry: Registry, crls: CrlService, timing: Partial<CrlFetchTiming> | undefined, metrics: Metrics, log: Logger): CrlFetcher {
  return startCrlFetcher({
    registry,
    crls,
    ...(timing === undefined ? {} : { timing }),
    onFetched: (ca, outcome, url, err) => {
      metrics.crlFetched(ca, outcome)
      if (outcome === 'failed') log.warn({ event: 'crl_fetch_failed', ca, url, err }, 'fetching a CRL failed: the held one (if any) stays in force')
      else log.debug({ event: 'crl_fetched', ca, url, outcome }, 'CRL fetched')
    }
  })
}

/** `at`: an embedded broker someone else runs; else one is started here when a listener has no upstream. */
async function startBrokerIfNeeded (config: Config, at: HostPort | undefined, log: Logger): Promise<{ broker: EmbeddedBroker | undefined, brokerAt: HostPort | undefined }> {
  let broker: EmbeddedBroker | undefined
  let brokerAt: HostPort | undefined = at
  if (brokerAt === undefined && config.listeners.some((l) => l.upstream === undefined)) {
    // aedes (~2.5 MB of heap, imported alone) is loaded only when a listener forwards to it.
    const { startEmbeddedBroker } = await import('./upstream/embedded-broker.js')
    broker = await startEmbeddedBroker()
    brokerAt = broker
    log.info({ upstream: `${broker.host}:${broker.port}` }, 'no upstream configured: forwarding to the embedded MQTT broker')
  }
  return { broker, brokerAt }
}

function createEnrollmentFor (registry: Registry, audit: AuditLog, metrics: Metrics, log: Logger): Enrollment {
  return createEnrollment({
    registry,
    audit,
    onRegistered: (deviceId, group) => {
      metrics.deviceRegistered(group)
      log.info({ event: 'device_registered', deviceId, enrollmentGroupId: group }, 'device registered by its enrollment group on first connection')
    }
  })
}

/** What the device listeners share. */
interface ListenerDeps {
  readonly tls: ServerPair
  readonly brokerAt: HostPort | undefined
  readonly validator: ValidatorPool
  readonly registry: Registry
  readonly live: LiveConnections
  readonly metrics: Metrics
  readonly log: Logger
  readonly refusals: RefusalMemory
  readonly handshakeLog: OncePerAddress
  readonly revocation: Revocation
  readonly enrollment: Enrollment
  readonly ocsp: OcspChecker
}

/** The device listeners, started one after another in config order, and what shutdown needs of them. */
interface DeviceListeners {
  /** Connection handlers still running. */
  readonly pending: Set<Promise<void>>
  readonly forwarders: Forwarder[]
  readonly rotations: CertificateRotation[]
  readonly started: Array<StartedListener & { stopAccepting: () => void }>
}

async function startListeners (config: Config, d: ListenerDeps): Promise<DeviceListeners> {
  const { tls, brokerAt, validator, registry, live, metrics, log, refusals, handshakeLog, revocation, enrollment, ocsp } = d
  const pending = new Set<Promise<void>>()
  const costs = createConnectionCosts(config.costReportEvery, log)
  const forwarders: Forwarder[] = []
  const rotations: CertificateRotation[] = []
  const started: Array<StartedListener & { stopAccepting: () => void }> = []
  for (const l of config.listeners) {
    const upstream = l.upstream ?? brokerAt
    if (upstream === undefined) throw new Error(`listener ${l.name} has no upstream`)
    const forwarder = await forwarderFor(l, upstream, config, metrics, log)
    forwarders.push(forwarder)
    const ctx: ConnectionContext = {
      listener: l.name, validator, registry, forwarder, live, metrics, log, refusals, idleTimeoutMs: config.idleTimeoutMs, revocation, enrollment, ocsp, costs
    }
    const own = l.tlsCertFile === undefined ? tls : await serverCertificate(config.dataDir, l.tlsCertFile, l.tlsKeyFile)
    const listener = await startDeviceListener(
      {
        host: l.listen.host,
        port: l.listen.port,
        certPem: own.certPem,
        keyPem: own.keyPem,
        handshakeTimeoutMs: config.handshakeTimeoutMs,
        maxHandshakes: config.maxHandshakes,
        handshakeRatePerAddress: config.handshakeRatePerAddress,
        trustedProxies: blockList(l.trustedProxies)
      },
      {
        onAccepted: () => { metrics.connectionAccepted(l.name) },
        onHandshakeFailed: (bucket, err, address) => {
          metrics.handshakeFailed(l.name, bucket)
          log.debug({ event: 'handshake_failed', bucket, code: err.code, message: err.message, listener: l.name }, 'TLS handshake failed')
          if (!deviceCertificateFault(bucket)) return
          // The device's certificate is the problem: worth an operator's eye, once a minute per address.
          const admitted = handshakeLog.admit(address)
          if (admitted !== undefined) log.info({ event: 'handshake_refused', bucket, code: err.code, detail: err.reason ?? err.message, remote: address, listener: l.name, suppressed: admitted.suppressed }, 'TLS handshake refused: the device certificate cannot be used')
        },
        onSecure: (socket, peer) => {
          const p = handleConnection(socket, peer, ctx).catch((err: unknown) => {
            log.error({ err }, 'connection handler failed')
            socket.destroy()
          })
          pending.add(p)
          void p.finally(() => pending.delete(p))
        }
      }
    )
    rotations.push(startCertificateRotation({ listener: l.name, files: pairFiles(l, config), initial: own }, { apply: (p) => { listener.setCertificate(p.certPem, p.keyPem) }, metrics, log }))
    started.push({ name: l.name, protocol: l.protocol, address: listener.address, upstream, stopAccepting: listener.stopAccepting })
  }
  return { pending, forwarders, rotations, started }
}

async function startAdmin (config: Config, d: { token: string, health: GatewayHealth, group: GroupLink | undefined, metrics: Metrics, registry: Registry, caService: CaService, crls: CrlService, live: LiveConnections, audit: AuditLog }): Promise<AdminServer> {
  const { token, health, registry, live } = d
  return await startAdminServer(
    { listen: config.adminListen, token, maxBodyBytes: 256 * 1024, bodyLimit: (path) => path.endsWith('/crl') ? MAX_CRL_BYTES : undefined },
    {
      notReady: () => health.stopping ? 'stopping' : health.registryLost ? 'registry_unavailable' : undefined,
      metricsText: d.group?.metricsText ?? d.metrics.metricsText,
      routes: [
        createCertificateRoutes({ registry, cas: d.caService }),
        createDeviceRoutes({ registry, liveCount: (id) => live.byDevice(id).length }),
        createImportRoute({ registry }),
        createRevocationRoutes({ registry, crls: d.crls }),
        createEnrollmentRoutes({ registry })
      ],
      audit: d.audit
    }
  )
}

/** Shutdown, in this order: stop accepting, drain (up to the drain timeout), close what is left, then everything else. */
async function closeGateway (config: Config, g: {
  devices: DeviceListeners, poolGauges: NodeJS.Timeout, live: LiveConnections, crlFetcher: CrlFetcher, ocsp: OcspChecker, revocation: Revocation, stopForgetting: () => void,
  enrollment: Enrollment, admin: AdminServer, broker: EmbeddedBroker | undefined, validator: ValidatorPool, registry: Registry
}): Promise<void> {
  const { pending, forwarders, rotations, started } = g.devices
  for (const r of rotations) r.stop()
  for (const l of started) l.stopAccepting()
  for (const f of forwarders) f.drain()
  const drained = await Promise.race([
    Promise.allSettled([...pending]).then(() => true),
    new Promise<false>((resolve) => setTimeout(() => { resolve(false) }, config.drainTimeoutMs).unref())
  ])
  if (!drained) g.live.closeWhere(() => true, 'shutdown', 'certgate is shutting down')
  await Promise.allSettled([...pending])
  clearInterval(g.poolGauges)
  g.live.stop()
  g.crlFetcher.stop()
  g.ocsp.stop()
  g.revocation.stop()
  g.stopForgetting()
  g.enrollment.stop()
  await g.admin.close()
  await Promise.allSettled(forwarders.map(async (f) => { await f.close() }))
  await g.broker?.close()
  await g.validator.close()
  await g.registry.close()
}

/** Why the embedded broker refuses MQTT 5 (docs/operations-day-two.md "MQTT 5"). */
const EMBEDDED_BROKER_MQTT5 = 'an MQTT 5 CONNECT, and the embedded broker (aedes 1.x) speaks MQTT 3.1.1 only: set CERTGATE_UPSTREAM to a broker that speaks MQTT 5 (Mosquitto, EMQX, HiveMQ…), or connect with MQTT 3.1.1'

/** The forwarding mode a listener is configured for, with its own fail-fast view of its upstream. */
async function forwarderFor (l: ListenerConfig, upstream: HostPort, config: Config, metrics: Metrics, log: Logger): Promise<Forwarder> {
  const target = `${upstream.host}:${upstream.port}`
  const health = createUpstreamHealth({
    target,
    probeWindowMs: config.upstreamConnectTimeoutMs,
    onAttemptFailed: () => { metrics.upstreamFailed(l.name) },
    onChange: (up, detail) => {
      metrics.setUpstreamUp(l.name, up)
      if (up) log.info({ event: 'upstream_up', upstream: target, listener: l.name }, detail)
      else log.error({ event: 'upstream_down', upstream: target, listener: l.name }, `${detail}; new devices are refused at once until a probe connects`)
    }
  })
  const preamble = l.upstreamProxyProtocol
    ? (d: DeviceConnection): Buffer => encodeV2({
        source: d.source,
        destination: d.destination,
        deviceId: d.identity.deviceId,
        caName: d.identity.caName,
        thumbprint: d.identity.thumbprint,
        tlsVersion: d.socket.getProtocol() ?? undefined,
        cipher: d.socket.getCipher().standardName
      })
    : undefined
  const connectTimeoutMs = config.upstreamConnectTimeoutMs
  switch (l.protocol) {
    case 'mqtt':
      return createMqttForwarder({
        upstream,
        health,
        connectTimeoutMs,
        firstPacketTimeoutMs: config.mqttConnectTimeoutMs,
        maxConnectBytes: 256 * 1024,
        usernameIsDeviceId: l.mqttUsernameIsDeviceId,
        preamble,
        mqtt5Unsupported: l.upstream === undefined ? EMBEDDED_BROKER_MQTT5 : undefined
      })
    case 'tcp':
      return createTcpForwarder({ target: upstream, connectTimeoutMs, health, preamble })
    case 'http': {
      // undici (~6 MB of heap, imported alone) is loaded only by a gateway with an http listener: less for every GC to mark.
      const { createHttpForwarder } = await import('./upstream/http-forwarder.js')
      return createHttpForwarder({
        upstream,
        health,
        connectTimeoutMs,
        upstreamTimeoutMs: l.httpUpstreamTimeoutMs,
        forwardChain: l.httpForwardChain,
        websocketPayload: l.websocketPayload,
        mqttUsernameIsDeviceId: l.mqttUsernameIsDeviceId,
        maxUpstreamConnections: 256,
        onRequest: (outcome) => { metrics.httpRequest(l.name, outcome) },
        onFailure: (f) => { log.warn({ event: 'http_failed', listener: l.name, ...f }, 'request not forwarded') },
        refusalTimeoutMs: config.mqttConnectTimeoutMs
      })
    }
  }
}

/** Handshake failures that are the device certificate's doing (logged at info), not the network's. */
const deviceCertificateFault = (bucket: HandshakeFailure): boolean => bucket === 'bad_certificate' || bucket === 'bad_certificate_proof'

/** The certificate files a listener serves (its own, else the gateway's); undefined: the generated one. */
function pairFiles (l: ListenerConfig, config: Config): { certFile: string, keyFile: string } | undefined {
  const certFile = l.tlsCertFile ?? config.tlsCertFile
  const keyFile = l.tlsCertFile === undefined ? config.tlsKeyFile : l.tlsKeyFile
  return certFile === undefined || keyFile === undefined ? undefined : { certFile, keyFile }
}

/** Addresses and CIDR blocks, as validated by the config; undefined when there are none. */
function blockList (entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined
  const list = new BlockList()
  for (const e of entries) {
    const [address = '', prefix] = e.split('/')
    const type = isIPv6(address) ? 'ipv6' : 'ipv4'
    if (prefix === undefined) list.addAddress(address, type)
    else list.addSubnet(address, Number(prefix), type)
  }
  return list
}
