// Configuration: read once from the environment and, for several device listeners, a JSON file
// named by CERTGATE_CONFIG (by the CLI entry only); validated, defaults filled, frozen. Every
// other module gets its slice through its factory's parameters.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { availableParallelism } from 'node:os'
import { isIP } from 'node:net'
import { errorMessage } from '../workers/errors.js'

export const PROTOCOLS = ['tcp', 'mqtt', 'http'] as const
export type Protocol = typeof PROTOCOLS[number]

export interface HostPort { readonly host: string, readonly port: number }

/** One device listener: where devices connect, and how their authenticated traffic is forwarded. */
export interface ListenerConfig {
  /** The `listener` label on metrics and logs. */
  readonly name: string
  readonly listen: HostPort
  readonly protocol: Protocol
  /** Undefined (tcp/mqtt only): the embedded MQTT broker. For http, the origin http://host:port. */
  readonly upstream: HostPort | undefined
  /** tcp/mqtt: each upstream connection starts with a PROXY protocol v2 header naming the device. */
  readonly upstreamProxyProtocol: boolean
  /** mqtt: the CONNECT username the broker sees is the deviceId, whatever the device sent. */
  readonly mqttUsernameIsDeviceId: boolean
  /** http: x-forwarded-client-cert carries the device's certificate and chain (URL-encoded PEM). */
  readonly httpForwardChain: boolean
  /** http: how long the upstream may take to start answering, and between body chunks. */
  readonly httpUpstreamTimeoutMs: number
  /** http: WebSocket payloads are MQTT under mqtt mode's CONNECT rules ('mqtt'), or unchecked ('opaque'). */
  readonly websocketPayload: 'mqtt' | 'opaque'
  /** Load balancer addresses (IPs or CIDR blocks) whose connections start with a PROXY header. */
  readonly trustedProxies: readonly string[]
  /** This listener's own server certificate; undefined: the gateway's (CERTGATE_TLS_CERT). */
  readonly tlsCertFile: string | undefined
  readonly tlsKeyFile: string | undefined
}

export interface Config {
  readonly dataDir: string
  /** At least one; from CERTGATE_LISTEN/PROTOCOL/UPSTREAM, or the CERTGATE_CONFIG file. */
  readonly listeners: readonly ListenerConfig[]
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
  /** Log certgate's own CPU per connection, by step, every this many authenticated connections (0: never). */
  readonly costReportEvery: number
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

/** The inverse of parseHostPort: IPv6 hosts in brackets. */
export function formatHostPort (a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

function int (env: NodeJS.ProcessEnv, name: string, def: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}="${raw}" must be an integer from ${min} to ${max}`)
  return n
}

function bool (env: NodeJS.ProcessEnv, name: string, def: boolean): boolean {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (raw === '1' || raw === 'true') return true
  if (raw === '0' || raw === 'false') return false
  throw new ConfigError(`${name}="${raw}" must be true or false (1 or 0)`)
}

function oneOf<T extends string> (value: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${what}="${value}" must be one of ${allowed.join(', ')}`)
  return value as T
}

export function configFromEnv (env: NodeJS.ProcessEnv): Config {
  const cert = env.CERTGATE_TLS_CERT
  const key = env.CERTGATE_TLS_KEY
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError('set both CERTGATE_TLS_CERT and CERTGATE_TLS_KEY, or neither (a development certificate is generated)')
  }
  const token = env.CERTGATE_ADMIN_TOKEN
  if (token !== undefined && token.length < 16) throw new ConfigError('CERTGATE_ADMIN_TOKEN must be at least 16 characters')
  return Object.freeze({
    dataDir: resolve(env.CERTGATE_DATA_DIR ?? './data'),
    listeners: Object.freeze(listenersFrom(env)),
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
    costReportEvery: int(env, 'CERTGATE_COST_REPORT_EVERY', 0, 0, 1_000_000_000),
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

function parseUpstream (value: string, protocol: Protocol, what: string): HostPort {
  if (protocol === 'http') {
    let url: URL
    try { url = new URL(value) } catch { throw new ConfigError(`${what}="${value}" must be http://host:port in http mode`) }
    if (url.protocol !== 'http:') throw new ConfigError(`${what}="${value}" must be http://host:port in http mode`)
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port === '' ? 80 : url.port) }
  }
  return parseHostPort(value, what)
}

/** The single listener of CERTGATE_LISTEN/PROTOCOL/UPSTREAM, or the listeners of the CERTGATE_CONFIG file. */
function listenersFrom (env: NodeJS.ProcessEnv): ListenerConfig[] {
  // Per-listener options in the environment are the defaults for the file's listeners too.
  const defaults = {
    upstreamProxyProtocol: oneOf(env.CERTGATE_UPSTREAM_PROXY_PROTOCOL ?? 'off', ['off', 'v2'], 'CERTGATE_UPSTREAM_PROXY_PROTOCOL') === 'v2',
    mqttUsernameIsDeviceId: oneOf(env.CERTGATE_MQTT_USERNAME ?? 'keep', ['keep', 'device-id'], 'CERTGATE_MQTT_USERNAME') === 'device-id',
    httpForwardChain: bool(env, 'CERTGATE_HTTP_FORWARD_CHAIN', false),
    httpUpstreamTimeoutMs: int(env, 'CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS', 30_000, 100, 3_600_000),
    websocketPayload: oneOf(env.CERTGATE_WEBSOCKET_PAYLOAD ?? 'mqtt', ['mqtt', 'opaque'], 'CERTGATE_WEBSOCKET_PAYLOAD'),
    trustedProxies: addressList((env.CERTGATE_TRUSTED_PROXIES ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''), 'CERTGATE_TRUSTED_PROXIES'),
    tlsCertFile: undefined,
    tlsKeyFile: undefined
  }
  const file = env.CERTGATE_CONFIG
  if (file !== undefined && file !== '') {
    for (const name of ['CERTGATE_LISTEN', 'CERTGATE_PROTOCOL', 'CERTGATE_UPSTREAM']) {
      if (env[name] !== undefined) {
        throw new ConfigError(`${name} is set and so is CERTGATE_CONFIG: with a config file, each listener's listen, protocol and upstream are set in the file`)
      }
    }
    return listenersFromFile(resolve(file), defaults)
  }
  const protocol = oneOf(env.CERTGATE_PROTOCOL ?? 'mqtt', PROTOCOLS, 'CERTGATE_PROTOCOL')
  const upstream = env.CERTGATE_UPSTREAM
  return [checkListener({
    ...defaults,
    name: 'device',
    listen: parseHostPort(env.CERTGATE_LISTEN ?? '0.0.0.0:8883', 'CERTGATE_LISTEN'),
    protocol,
    upstream: upstream === undefined || upstream === '' ? undefined : parseUpstream(upstream, protocol, 'CERTGATE_UPSTREAM')
  }, 'CERTGATE_UPSTREAM')]
}

const LISTENER_KEYS = ['name', 'listen', 'protocol', 'upstream', 'upstreamProxyProtocol', 'mqttUsername', 'httpForwardChain',
  'httpUpstreamTimeoutMs', 'websocketPayload', 'trustedProxies', 'tlsCert', 'tlsKey'] as const

function listenersFromFile (file: string, defaults: Omit<ListenerConfig, 'name' | 'listen' | 'protocol' | 'upstream'>): ListenerConfig[] {
  let doc: unknown
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(`CERTGATE_CONFIG="${file}" could not be read as JSON: ${errorMessage(err)}`)
  }
  const where = `CERTGATE_CONFIG ${file}`
  if (!isObject(doc)) throw new ConfigError(`${where}: must be a JSON object {"listeners": [...]}`)
  for (const k of Object.keys(doc)) if (k !== 'listeners') throw new ConfigError(
    `${where}: unknown key "${k}"; the file holds only "listeners" (other settings are CERTGATE_* environment variables)`)
  const list = doc.listeners
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError(`${where}: "listeners" must be a non-empty array`)
  const listeners = list.map((raw: unknown, i): ListenerConfig => {
    const at = `${where}: listeners[${i}]`
    if (!isObject(raw)) throw new ConfigError(`${at} must be an object`)
    for (const k of Object.keys(raw)) if (!(LISTENER_KEYS as readonly string[]).includes(k)) throw new ConfigError(
      `${at}: unknown key "${k}"; known keys are ${LISTENER_KEYS.join(', ')}`)
    const str = (k: string, def?: string): string => {
      const v = raw[k] ?? def
      if (typeof v !== 'string') throw new ConfigError(`${at}.${k} must be a string`)
      return v
    }
    const name = str('name')
    if (!/^[a-z0-9_-]{1,32}$/.test(name)) throw new ConfigError(`${at}.name="${name}" must be 1 to 32 of a-z, 0-9, _ and - (it is a metric label)`)
    const protocol = oneOf(str('protocol'), PROTOCOLS, `${at}.protocol`)
    const upstream = raw.upstream === undefined ? undefined : parseUpstream(str('upstream'), protocol, `${at}.upstream`)
    const flag = (k: string, def: boolean): boolean => {
      const v = raw[k] ?? def
      if (typeof v !== 'boolean') throw new ConfigError(`${at}.${k} must be true or false`)
      return v
    }
    const timeout = raw.httpUpstreamTimeoutMs ?? defaults.httpUpstreamTimeoutMs
    if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 100 || timeout > 3_600_000) {
      throw new ConfigError(`${at}.httpUpstreamTimeoutMs must be an integer from 100 to 3600000`)
    }
    const proxies = raw.trustedProxies ?? defaults.trustedProxies
    if (!Array.isArray(proxies) || proxies.some((p) => typeof p !== 'string')) {
      throw new ConfigError(`${at}.trustedProxies must be an array of addresses or CIDR blocks`)
    }
    if ((raw.tlsCert === undefined) !== (raw.tlsKey === undefined)) throw new ConfigError(`${at}: set both tlsCert and tlsKey, or neither`)
    return checkListener({
      name,
      listen: parseHostPort(str('listen'), `${at}.listen`),
      protocol,
      upstream,
      upstreamProxyProtocol: oneOf(str('upstreamProxyProtocol', defaults.upstreamProxyProtocol && protocol !== 'http' ? 'v2' : 'off'), ['off', 'v2'],
        `${at}.upstreamProxyProtocol`) === 'v2',
      mqttUsernameIsDeviceId: oneOf(str('mqttUsername', defaults.mqttUsernameIsDeviceId ? 'device-id' : 'keep'), ['keep', 'device-id'],
        `${at}.mqttUsername`) === 'device-id',
      httpForwardChain: flag('httpForwardChain', defaults.httpForwardChain),
      httpUpstreamTimeoutMs: timeout,
      websocketPayload: oneOf(str('websocketPayload', defaults.websocketPayload), ['mqtt', 'opaque'], `${at}.websocketPayload`),
      trustedProxies: addressList(proxies as string[], `${at}.trustedProxies`),
      tlsCertFile: raw.tlsCert === undefined ? undefined : resolve(str('tlsCert')),
      tlsKeyFile: raw.tlsKey === undefined ? undefined : resolve(str('tlsKey'))
    }, `${at}.upstream`)
  })
  const seen = new Set<string>()
  for (const l of listeners) {
    if (seen.has(l.name)) throw new ConfigError(`${where}: two listeners are named "${l.name}"; names must be unique`)
    seen.add(l.name)
    const addr = `${l.listen.host}:${l.listen.port}`
    if (l.listen.port !== 0 && seen.has(addr)) throw new ConfigError(`${where}: two listeners listen on ${addr}`)
    seen.add(addr)
  }
  return listeners
}

function checkListener (l: ListenerConfig, upstreamWhat: string): ListenerConfig {
  if (l.protocol === 'http' && l.upstream === undefined) {
    throw new ConfigError(`${upstreamWhat} must be set to http://host:port in http mode (the embedded broker speaks MQTT)`)
  }
  if (l.protocol === 'http' && l.upstreamProxyProtocol) {
    throw new ConfigError(`${upstreamWhat}: the PROXY protocol is for tcp and mqtt listeners; http mode sends the identity in headers`)
  }
  return Object.freeze({ ...l, listen: Object.freeze({ ...l.listen }), upstream: l.upstream === undefined ? undefined : Object.freeze({ ...l.upstream }) })
}

/** IPv4/IPv6 addresses and CIDR blocks (10.0.0.0/8, fd00::/8), each checked. */
function addressList (entries: readonly string[], what: string): readonly string[] {
  for (const e of entries) {
    const [address = '', prefix, extra] = e.split('/')
    const family = isIP(address)
    const max = family === 6 ? 128 : 32
    if (family === 0 || extra !== undefined || (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= max))) {
      throw new ConfigError(`${what}: "${e}" is not an IP address or CIDR block (for example 10.0.0.5, 10.0.0.0/8, fd00::/8)`)
    }
  }
  return Object.freeze([...entries])
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

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
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(`CERTGATE_REGISTRY_URL has the scheme "${url.protocol.slice(0, 20)}"; it ${usage}`)
  }
  if (noHost && !url.searchParams.has('host')) throw new ConfigError(`CERTGATE_REGISTRY_URL names no host; it ${usage}`)
  if (url.pathname.length <= 1) throw new ConfigError(`CERTGATE_REGISTRY_URL names no database; it ${usage}`)
  return value
}
