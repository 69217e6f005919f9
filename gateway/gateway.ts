// Wires one gateway process together from a frozen Config: registry, validator pool, forwarder,
// device listener, live connections and revocation, admin listener. Owns start-up order and
// shutdown (stop accepting, drain, close); knows nothing of X.509 rules or TLS details.
import { pino, type Logger } from 'pino'
import type { Config, HostPort } from './config.js'
import { adminToken, ensureDataDir, serverCertificate } from './data-dir.js'
import { openRegistry } from './registry/open-registry.js'
import { withRelayedChanges, type ChangeRelay } from './registry/relayed-changes.js'
import type { Registry } from './registry/types.js'
import { createValidator } from './validation/validator-pool.js'
import { createMetrics, type Metrics } from './metrics.js'
import { createLiveConnections } from './live/live-connections.js'
import { startRevocation } from './live/revocation.js'
import { startDeviceListener } from './tls/device-listener.js'
import { handleConnection, type ConnectionContext } from './connection.js'
import { createTcpForwarder, type Forwarder } from './upstream/forwarder.js'
import { createMqttForwarder } from './upstream/mqtt-forwarder.js'
import { startEmbeddedBroker, type EmbeddedBroker } from './upstream/embedded-broker.js'
import { startAdminServer } from './admin/admin-server.js'
import { createCaService, type CaService } from './control/ca-service.js'
import { createRefusalMemory } from './auth/refusal-memory.js'
import { createCertificateRoutes } from './admin/certificate-routes.js'
import { createDeviceRoutes } from './admin/device-routes.js'
import { createImportRoute } from './admin/import-route.js'

export interface Gateway {
  readonly device: HostPort
  readonly admin: HostPort
  readonly upstream: HostPort
  readonly adminToken: string
  readonly registry: Registry
  readonly caService: CaService
  readonly log: Logger
  /** Stops accepting, waits up to the drain timeout for devices to leave, then closes everything. */
  close: () => Promise<void>
}

const LISTENER = 'device'

/** What a gateway process running in a group (CERTGATE_PROCESSES > 1) gets from the group. */
export interface GroupLink {
  /** Registry changes made by the other processes (used with SQLite; PostgreSQL announces its own). */
  readonly changes: ChangeRelay
  /** Lets the group collect this process's metrics. */
  shareMetrics: (metrics: Metrics) => void
  /** The metrics of every process in the group, as Prometheus text. */
  metricsText: () => Promise<string>
}

export async function startGateway (config: Config, deps: { log?: Logger, group?: GroupLink } = {}): Promise<Gateway> {
  // In a process group, every line says which process wrote it.
  const log = deps.log ?? pino({ level: config.logLevel, base: { service: 'certgate', ...(deps.group === undefined ? {} : { pid: process.pid }) } })
  if (config.protocol === 'http') throw new Error('CERTGATE_PROTOCOL=http is not implemented in this version; use tcp or mqtt')
  ensureDataDir(config.dataDir)
  const token = adminToken(config.dataDir, config.adminToken)
  const tls = await serverCertificate(config.dataDir, config.tlsCertFile, config.tlsKeyFile)
  if (tls.generated) log.warn({ dataDir: config.dataDir }, 'using a generated development server certificate; set CERTGATE_TLS_CERT and CERTGATE_TLS_KEY in production')

  const opened = await openRegistry(config, {
    onState: (s) => {
      if (s.state === 'lost') log.error({ event: 'registry_lost', err: s.error, retryInMs: s.retryInMs }, 'lost the PostgreSQL registry: refusing new devices until it is back (connected devices stay)')
      else log.warn({ event: 'registry_restored' }, 'PostgreSQL registry reachable again: rechecking live devices and trusted CAs')
    },
    onAuditError: (err) => { log.error({ err }, 'an audit record could not be written') }
  })
  const registry = deps.group !== undefined && opened.backend === 'sqlite' ? withRelayedChanges(opened.registry, deps.group.changes) : opened.registry
  const metrics = createMetrics([LISTENER], async () => ({ cas: await registry.listCas(), devices: await registry.countDevices() }))
  deps.group?.shareMetrics(metrics)
  const validator = createValidator({ threads: config.workers, maxQueue: config.maxValidationQueue, cacheEntries: config.intermediateCacheEntries }, { onValidated: metrics.validated })
  const live = createLiveConnections({ maxConnectionAgeMs: config.maxConnectionAgeMs })
  const stopRevocation = await startRevocation({
    registry,
    live,
    setTrusted: (cas) => { validator.setTrusted(cas) },
    onError: (err) => { metrics.revocationFailed(); log.error({ err }, 'applying a registry change failed: revoked devices may still be connected') }
  })

  let broker: EmbeddedBroker | undefined
  let upstream = config.upstream
  if (upstream === undefined) {
    broker = await startEmbeddedBroker()
    upstream = broker
    log.info({ upstream: `${broker.host}:${broker.port}` }, 'no CERTGATE_UPSTREAM: forwarding to the embedded MQTT broker')
  }
  const forwarder: Forwarder = config.protocol === 'mqtt'
    ? createMqttForwarder({ upstream, connectTimeoutMs: config.upstreamConnectTimeoutMs, firstPacketTimeoutMs: config.mqttConnectTimeoutMs, maxConnectBytes: 256 * 1024 })
    : createTcpForwarder(upstream, config.upstreamConnectTimeoutMs)

  const refusals = createRefusalMemory({ ttlMs: config.refusalMemoryMs, maxEntries: 10_000 })
  // Any registry change may be the fix for a remembered refusal: forget them all.
  const stopForgetting = registry.onChange(() => { refusals.forget() })
  const ctx: ConnectionContext = { listener: LISTENER, validator, registry, forwarder, live, metrics, log, refusals, idleTimeoutMs: config.idleTimeoutMs }
  const pending = new Set<Promise<void>>()
  const listener = await startDeviceListener(
    {
      host: config.listen.host,
      port: config.listen.port,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      maxHandshakes: config.maxHandshakes,
      handshakeRatePerAddress: config.handshakeRatePerAddress
    },
    {
      onAccepted: () => { metrics.connectionAccepted(LISTENER) },
      onHandshakeFailed: (bucket, err) => {
        metrics.handshakeFailed(LISTENER, bucket)
        log.debug({ event: 'handshake_failed', bucket, code: err.code, message: err.message, listener: LISTENER }, 'TLS handshake failed')
      },
      onSecure: (socket) => {
        const p = handleConnection(socket, ctx).catch((err: unknown) => {
          log.error({ err }, 'connection handler failed')
          socket.destroy()
        })
        pending.add(p)
        void p.finally(() => pending.delete(p))
      }
    }
  )
  const poolGauges = setInterval(() => {
    metrics.setPool(validator.stats())
    for (const e of live.all()) e.flushBytes()
  }, 1000)
  poolGauges.unref()

  const caService = createCaService(registry, { verificationCodeTtlMs: config.verificationCodeTtlMs })
  let ready = true
  const admin = await startAdminServer(
    { listen: config.adminListen, token, maxBodyBytes: 256 * 1024 },
    {
      ready: () => ready,
      metricsText: deps.group?.metricsText ?? metrics.metricsText,
      routes: [createCertificateRoutes({ registry, cas: caService }), createDeviceRoutes({ registry, liveCount: (id) => live.byDevice(id).length }), createImportRoute({ registry })],
      audit: opened.audit
    }
  )

  return {
    device: listener.address,
    admin: admin.address,
    upstream,
    adminToken: token,
    registry,
    caService,
    log,
    close: async () => {
      ready = false
      listener.stopAccepting()
      const drained = await Promise.race([
        Promise.allSettled([...pending]).then(() => true),
        new Promise<false>((resolve) => setTimeout(() => { resolve(false) }, config.drainTimeoutMs).unref())
      ])
      if (!drained) live.closeWhere(() => true, 'shutdown', 'certgate is shutting down')
      await Promise.allSettled([...pending])
      clearInterval(poolGauges)
      live.stop()
      stopRevocation()
      stopForgetting()
      await admin.close()
      await broker?.close()
      await validator.close()
      await registry.close()
    }
  }
}
