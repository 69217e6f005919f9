// Configuration: read once from the environment (by the CLI entry only), validated, defaults
// filled, frozen. Every other module gets its slice through its factory's parameters.
import { resolve } from 'node:path'
import { availableParallelism } from 'node:os'

export const PROTOCOLS = ['tcp', 'mqtt', 'http'] as const
export type Protocol = typeof PROTOCOLS[number]

export interface HostPort { readonly host: string, readonly port: number }

export interface Config {
  readonly dataDir: string
  readonly listen: HostPort
  readonly protocol: Protocol
  /** Undefined: start the embedded MQTT broker and forward there. */
  readonly upstream: HostPort | undefined
  readonly adminListen: HostPort
  /** Undefined: generate one and save it as <dataDir>/admin-token. */
  readonly adminToken: string | undefined
  readonly tlsCertFile: string | undefined
  readonly tlsKeyFile: string | undefined
  readonly workers: number
  readonly maxValidationQueue: number
  readonly intermediateCacheEntries: number
  readonly handshakeTimeoutMs: number
  readonly maxHandshakes: number
  readonly handshakeRatePerAddress: number
  readonly idleTimeoutMs: number
  readonly refusalMemoryMs: number
  readonly upstreamConnectTimeoutMs: number
  readonly mqttConnectTimeoutMs: number
  readonly verificationCodeTtlMs: number
  readonly drainTimeoutMs: number
  readonly maxConnectionAgeMs: number
  readonly logLevel: string
  /** postgres://… for a fleet registry shared by several gateways; undefined: SQLite in dataDir. */
  readonly registryUrl: string | undefined
  /** Gateway processes sharing the device port (node:cluster). */
  readonly processes: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function parseHostPort (value: string, what: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || port > 65535) throw new ConfigError(`${what}="${value}" is not host:port (for example 0.0.0.0:8883, [::1]:8883; port 0 picks a free port)`)
  return { host: m[1] ?? m[2] ?? '', port }
}

function int (env: NodeJS.ProcessEnv, name: string, def: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}="${raw}" must be an integer from ${min} to ${max}`)
  return n
}

export function configFromEnv (env: NodeJS.ProcessEnv): Config {
  const protocol = env.CERTGATE_PROTOCOL ?? 'mqtt'
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new ConfigError(`CERTGATE_PROTOCOL="${protocol}" must be one of ${PROTOCOLS.join(', ')}`)
  const cert = env.CERTGATE_TLS_CERT
  const key = env.CERTGATE_TLS_KEY
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError('set both CERTGATE_TLS_CERT and CERTGATE_TLS_KEY, or neither (a development certificate is generated)')
  const upstream = env.CERTGATE_UPSTREAM
  const token = env.CERTGATE_ADMIN_TOKEN
  if (token !== undefined && token.length < 16) throw new ConfigError('CERTGATE_ADMIN_TOKEN must be at least 16 characters')
  return Object.freeze({
    dataDir: resolve(env.CERTGATE_DATA_DIR ?? './data'),
    listen: Object.freeze(parseHostPort(env.CERTGATE_LISTEN ?? '0.0.0.0:8883', 'CERTGATE_LISTEN')),
    protocol: protocol as Protocol,
    upstream: upstream === undefined || upstream === '' ? undefined : Object.freeze(parseUpstream(upstream, protocol as Protocol)),
    adminListen: Object.freeze(parseHostPort(env.CERTGATE_ADMIN_LISTEN ?? '127.0.0.1:8080', 'CERTGATE_ADMIN_LISTEN')),
    adminToken: token,
    tlsCertFile: cert === undefined ? undefined : resolve(cert),
    tlsKeyFile: key === undefined ? undefined : resolve(key),
    // On 2 cores one worker leaves a core for the handshakes themselves (DESIGN.md §4 numbers).
    workers: int(env, 'CERTGATE_WORKERS', Math.max(1, availableParallelism() - 1), 0, 64),
    maxValidationQueue: int(env, 'CERTGATE_MAX_VALIDATION_QUEUE', 1024, 1, 1_000_000),
    intermediateCacheEntries: int(env, 'CERTGATE_INTERMEDIATE_CACHE_ENTRIES', 10_000, 0, 10_000_000),
    handshakeTimeoutMs: int(env, 'CERTGATE_HANDSHAKE_TIMEOUT_MS', 10_000, 100, 600_000),
    maxHandshakes: int(env, 'CERTGATE_MAX_HANDSHAKES', 4096, 0, 1_000_000),
    handshakeRatePerAddress: int(env, 'CERTGATE_HANDSHAKE_RATE_PER_ADDRESS', 200, 0, 1_000_000),
    idleTimeoutMs: int(env, 'CERTGATE_IDLE_TIMEOUT_S', 900, 0, 30 * 86400) * 1000,
    refusalMemoryMs: int(env, 'CERTGATE_REFUSAL_MEMORY_S', 10, 0, 3600) * 1000,
    upstreamConnectTimeoutMs: int(env, 'CERTGATE_UPSTREAM_CONNECT_TIMEOUT_MS', 5_000, 100, 600_000),
    mqttConnectTimeoutMs: int(env, 'CERTGATE_MQTT_CONNECT_TIMEOUT_MS', 10_000, 100, 600_000),
    verificationCodeTtlMs: int(env, 'CERTGATE_VERIFICATION_CODE_TTL_S', 3600, 1, 30 * 86400) * 1000,
    drainTimeoutMs: int(env, 'CERTGATE_DRAIN_TIMEOUT_MS', 10_000, 0, 600_000),
    maxConnectionAgeMs: int(env, 'CERTGATE_MAX_CONNECTION_AGE_S', 0, 0, 365 * 86400) * 1000,
    logLevel: env.CERTGATE_LOG_LEVEL ?? 'info',
    registryUrl: parseRegistryUrl(env.CERTGATE_REGISTRY_URL),
    processes: int(env, 'CERTGATE_PROCESSES', 1, 1, 64)
  })
}

function parseUpstream (value: string, protocol: Protocol): HostPort {
  if (protocol === 'http') {
    let url: URL
    try { url = new URL(value) } catch { throw new ConfigError(`CERTGATE_UPSTREAM="${value}" must be http://host:port in http mode`) }
    if (url.protocol !== 'http:') throw new ConfigError(`CERTGATE_UPSTREAM="${value}" must be http://host:port in http mode`)
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port === '' ? 80 : url.port) }
  }
  return parseHostPort(value, 'CERTGATE_UPSTREAM')
}

function parseRegistryUrl (value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  const usage = 'must be postgres://user:password@host:port/database (unset it for the embedded SQLite registry)'
  let url: URL
  // Never echo the value: it may hold a password.
  try {
    // postgres://user@/database?host=/run/postgresql (a Unix socket) has an empty host, as libpq allows.
    url = new URL(value.replace(/^(postgres(?:ql)?:\/\/[^/]*@)\//, '$1unix-socket/'))
  } catch { throw new ConfigError(`CERTGATE_REGISTRY_URL is not a URL; it ${usage}`) }
  const noHost = url.hostname === '' || url.hostname === 'unix-socket'
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new ConfigError(`CERTGATE_REGISTRY_URL has the scheme "${url.protocol.slice(0, 20)}"; it ${usage}`)
  if (noHost && !url.searchParams.has('host')) throw new ConfigError(`CERTGATE_REGISTRY_URL names no host; it ${usage}`)
  if (url.pathname.length <= 1) throw new ConfigError(`CERTGATE_REGISTRY_URL names no database; it ${usage}`)
  return value
}
