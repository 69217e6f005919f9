// What this proves: configFromEnv turns the environment into a validated, frozen Config. An empty
// environment gives the documented defaults. Addresses are host:port, including bracketed IPv6.
// Every bad value is a ConfigError that names the variable and shows the offending value: a
// malformed address, a port over 65535, an unknown protocol, a TLS certificate without its key,
// a short admin token, an out-of-range or non-integer knob. In http mode the upstream is an
// http:// URL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, configFromEnv, parseHostPort, type Config, type ListenerConfig } from '../config.js'

/** The single listener the environment describes. */
function only (c: Config): ListenerConfig {
  assert.equal(c.listeners.length, 1)
  return c.listeners[0]!
}
const fromEnv = (env: NodeJS.ProcessEnv): ListenerConfig => only(configFromEnv(env))

function refused (env: NodeJS.ProcessEnv, ...patterns: RegExp[]): void {
  assert.throws(() => configFromEnv(env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    for (const p of patterns) assert.match(err.message, p)
    return true
  }, JSON.stringify(env))
}

test('an empty environment gives the defaults', () => {
  const c = configFromEnv({})
  assert.deepEqual(only(c), {
    name: 'device',
    listen: { host: '0.0.0.0', port: 8883 },
    protocol: 'mqtt',
    upstream: undefined,
    upstreamProxyProtocol: false,
    mqttUsernameIsDeviceId: false,
    httpForwardChain: false,
    httpUpstreamTimeoutMs: 30_000,
    websocketPayload: 'mqtt',
    trustedProxies: [],
    tlsCertFile: undefined,
    tlsKeyFile: undefined
  })
  assert.deepEqual(c.adminListen, { host: '127.0.0.1', port: 8080 })
  assert.equal(c.adminToken, undefined)
  assert.equal(c.tlsCertFile, undefined)
  assert.equal(c.tlsKeyFile, undefined)
  assert.equal(c.dataDir, resolve('./data'))
  assert.equal(c.workers, Math.max(1, availableParallelism() - 1))
  assert.equal(c.maxValidationQueue, 1024)
  assert.equal(c.intermediateCacheEntries, 10_000)
  assert.equal(c.handshakeTimeoutMs, 10_000)
  assert.equal(c.upstreamConnectTimeoutMs, 5_000)
  assert.equal(c.mqttConnectTimeoutMs, 10_000)
  assert.equal(c.verificationCodeTtlMs, 3_600_000)
  assert.equal(c.drainTimeoutMs, 10_000)
  assert.equal(c.maxConnectionAgeMs, 0)
  assert.equal(c.logLevel, 'info')
})

test('the returned config is frozen', () => {
  const c = configFromEnv({})
  assert.ok(Object.isFrozen(c))
  assert.ok(Object.isFrozen(c.listeners) && Object.isFrozen(only(c)) && Object.isFrozen(only(c).listen))
  assert.throws(() => { (only(c) as { protocol: string }).protocol = 'tcp' }, TypeError)
  assert.equal(only(c).protocol, 'mqtt')
})

test('addresses: IPv4, bracketed IPv6, names and port 0', () => {
  const c = configFromEnv({ CERTGATE_LISTEN: '[::1]:8883', CERTGATE_ADMIN_LISTEN: 'localhost:0', CERTGATE_UPSTREAM: '10.0.0.5:1883' })
  assert.deepEqual(only(c).listen, { host: '::1', port: 8883 })
  assert.deepEqual(c.adminListen, { host: 'localhost', port: 0 })
  assert.deepEqual(only(c).upstream, { host: '10.0.0.5', port: 1883 })
  assert.deepEqual(fromEnv({ CERTGATE_LISTEN: '[::]:65535' }).listen, { host: '::', port: 65535 })
  assert.deepEqual(parseHostPort('[fe80::1:2]:1', 'X'), { host: 'fe80::1:2', port: 1 })
  assert.equal(fromEnv({ CERTGATE_UPSTREAM: '' }).upstream, undefined, 'empty upstream means the embedded broker')
})

test('bad host:port values are ConfigErrors naming the variable', () => {
  for (const bad of ['8883', 'localhost', 'localhost:', ':8883', '::1:8883', '[::1]8883', 'host:port', 'a:b:1', 'host:123456', 'host:-1', 'host:88 83', '']) {
    refused({ CERTGATE_LISTEN: bad }, /CERTGATE_LISTEN/)
  }
  refused({ CERTGATE_ADMIN_LISTEN: 'nope' }, /CERTGATE_ADMIN_LISTEN="nope"/)
  refused({ CERTGATE_UPSTREAM: 'broker' }, /CERTGATE_UPSTREAM="broker"/)
  refused({ CERTGATE_PROTOCOL: 'tcp', CERTGATE_UPSTREAM: 'http://broker:80' }, /CERTGATE_UPSTREAM/)
})

test('a port over 65535 is refused', () => {
  refused({ CERTGATE_LISTEN: '0.0.0.0:65536' }, /CERTGATE_LISTEN="0\.0\.0\.0:65536"/)
  refused({ CERTGATE_ADMIN_LISTEN: '[::1]:99999' }, /CERTGATE_ADMIN_LISTEN/)
  refused({ CERTGATE_UPSTREAM: 'broker:70000' }, /CERTGATE_UPSTREAM/)
})

test('an unknown protocol is refused', () => {
  for (const bad of ['MQTT', 'https', 'udp', '']) refused({ CERTGATE_PROTOCOL: bad }, /CERTGATE_PROTOCOL/, /tcp, mqtt, http/)
  assert.equal(fromEnv({ CERTGATE_PROTOCOL: 'tcp' }).protocol, 'tcp')
  assert.equal(fromEnv({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: 'http://127.0.0.1:80' }).protocol, 'http')
})

test('the TLS certificate and key come together or not at all', () => {
  refused({ CERTGATE_TLS_CERT: '/etc/certgate/cert.pem' }, /CERTGATE_TLS_CERT/, /CERTGATE_TLS_KEY/)
  refused({ CERTGATE_TLS_KEY: '/etc/certgate/key.pem' }, /CERTGATE_TLS_CERT/, /CERTGATE_TLS_KEY/)
  const c = configFromEnv({ CERTGATE_TLS_CERT: 'cert.pem', CERTGATE_TLS_KEY: '/abs/key.pem' })
  assert.equal(c.tlsCertFile, resolve('cert.pem'))
  assert.equal(c.tlsKeyFile, '/abs/key.pem')
})

test('an admin token shorter than 16 characters is refused', () => {
  refused({ CERTGATE_ADMIN_TOKEN: 'short' }, /CERTGATE_ADMIN_TOKEN/, /16/)
  refused({ CERTGATE_ADMIN_TOKEN: 'x'.repeat(15) }, /CERTGATE_ADMIN_TOKEN/)
  refused({ CERTGATE_ADMIN_TOKEN: '' }, /CERTGATE_ADMIN_TOKEN/)
  assert.equal(configFromEnv({ CERTGATE_ADMIN_TOKEN: 'x'.repeat(16) }).adminToken, 'x'.repeat(16))
})

test('integer knobs: bad or out-of-range values are refused with the variable name and range', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['CERTGATE_WORKERS', '-1', /from 0 to 64/],
    ['CERTGATE_WORKERS', '65', /from 0 to 64/],
    ['CERTGATE_WORKERS', 'two', /from 0 to 64/],
    ['CERTGATE_WORKERS', '1.5', /from 0 to 64/],
    ['CERTGATE_MAX_VALIDATION_QUEUE', '0', /from 1 to 1000000/],
    ['CERTGATE_INTERMEDIATE_CACHE_ENTRIES', '10000001', /from 0 to 10000000/],
    ['CERTGATE_HANDSHAKE_TIMEOUT_MS', '99', /from 100 to 600000/],
    ['CERTGATE_UPSTREAM_CONNECT_TIMEOUT_MS', 'NaN', /from 100/],
    ['CERTGATE_MQTT_CONNECT_TIMEOUT_MS', '600001', /to 600000/],
    ['CERTGATE_VERIFICATION_CODE_TTL_S', '0', /from 1 /],
    ['CERTGATE_DRAIN_TIMEOUT_MS', 'Infinity', /from 0/],
    ['CERTGATE_MAX_CONNECTION_AGE_S', '-5', /from 0/]
  ]
  for (const [name, value, range] of cases) {
    refused({ [name]: value }, new RegExp(`${name}="${value.replace(/[.]/g, '\\.')}"`), range)
  }
})

test('integer knobs: valid values are used, seconds are converted to milliseconds, empty means default', () => {
  const c = configFromEnv({
    CERTGATE_WORKERS: '3',
    CERTGATE_MAX_VALIDATION_QUEUE: '1',
    CERTGATE_INTERMEDIATE_CACHE_ENTRIES: '0',
    CERTGATE_HANDSHAKE_TIMEOUT_MS: '100',
    CERTGATE_UPSTREAM_CONNECT_TIMEOUT_MS: '600000',
    CERTGATE_MQTT_CONNECT_TIMEOUT_MS: '2500',
    CERTGATE_VERIFICATION_CODE_TTL_S: '60',
    CERTGATE_DRAIN_TIMEOUT_MS: '0',
    CERTGATE_MAX_CONNECTION_AGE_S: '86400',
    CERTGATE_LOG_LEVEL: 'debug'
  })
  assert.equal(c.workers, 3)
  assert.equal(c.maxValidationQueue, 1)
  assert.equal(c.intermediateCacheEntries, 0)
  assert.equal(configFromEnv({ CERTGATE_WORKERS: '0' }).workers, 0, '0 workers validates on the event loop')
  assert.equal(c.handshakeTimeoutMs, 100)
  assert.equal(c.upstreamConnectTimeoutMs, 600_000)
  assert.equal(c.mqttConnectTimeoutMs, 2500)
  assert.equal(c.verificationCodeTtlMs, 60_000)
  assert.equal(c.drainTimeoutMs, 0)
  assert.equal(c.maxConnectionAgeMs, 86_400_000)
  assert.equal(c.logLevel, 'debug')
  assert.equal(configFromEnv({ CERTGATE_WORKERS: '' }).workers, Math.max(1, availableParallelism() - 1))
})

test('http mode: the upstream is an http:// URL', () => {
  const http = (u: string): ListenerConfig['upstream'] => fromEnv({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: u }).upstream
  assert.deepEqual(http('http://127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 })
  assert.deepEqual(http('http://backend.internal'), { host: 'backend.internal', port: 80 })
  assert.deepEqual(http('http://[::1]:8081/'), { host: '::1', port: 8081 })
  assert.deepEqual(http('http://Backend:8080/api'), { host: 'backend', port: 8080 })
  for (const bad of ['https://backend:443', 'backend:8080', 'not a url', 'mqtt://broker:1883']) {
    refused({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: bad }, /CERTGATE_UPSTREAM/, /http:\/\/host:port/)
  }
})

test('http mode needs an upstream: the embedded broker speaks MQTT', () => {
  refused({ CERTGATE_PROTOCOL: 'http' }, /CERTGATE_UPSTREAM must be set to http:\/\/host:port in http mode/)
  refused({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: 'http://a:1', CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2' }, /PROXY protocol is for tcp and mqtt/)
})

test('per-listener options from the environment', () => {
  const l = fromEnv({ CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2', CERTGATE_MQTT_USERNAME: 'device-id', CERTGATE_HTTP_FORWARD_CHAIN: 'true', CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS: '1500' })
  assert.equal(l.upstreamProxyProtocol, true)
  assert.equal(l.mqttUsernameIsDeviceId, true)
  assert.equal(l.httpForwardChain, true)
  assert.equal(l.httpUpstreamTimeoutMs, 1500)
  assert.equal(fromEnv({ CERTGATE_HTTP_FORWARD_CHAIN: '0' }).httpForwardChain, false)
  refused({ CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v1' }, /CERTGATE_UPSTREAM_PROXY_PROTOCOL="v1" must be one of off, v2/)
  refused({ CERTGATE_MQTT_USERNAME: 'deviceId' }, /CERTGATE_MQTT_USERNAME="deviceId" must be one of keep, device-id/)
  refused({ CERTGATE_HTTP_FORWARD_CHAIN: 'yes' }, /CERTGATE_HTTP_FORWARD_CHAIN="yes" must be true or false/)
  refused({ CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS: '50' }, /CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS="50" must be an integer from 100/)
})

function configFile (content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'certgate-config-')), 'certgate.json')
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

test('CERTGATE_CONFIG: several listeners, each with its own protocol, upstream and options; env options are their defaults', () => {
  const file = configFile({
    listeners: [
      { name: 'mqtt', listen: '0.0.0.0:8883', protocol: 'mqtt', upstream: '127.0.0.1:1883', mqttUsername: 'device-id' },
      { name: 'https', listen: '[::]:443', protocol: 'http', upstream: 'http://127.0.0.1:8080', httpForwardChain: true, tlsCert: 'web.pem', tlsKey: 'web.key' },
      { name: 'raw', listen: '127.0.0.1:0', protocol: 'tcp', upstreamProxyProtocol: 'off' }
    ]
  })
  const c = configFromEnv({ CERTGATE_CONFIG: file, CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2', CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS: '2000' })
  assert.deepEqual(c.listeners.map((l) => [l.name, l.protocol, l.listen, l.upstream]), [
    ['mqtt', 'mqtt', { host: '0.0.0.0', port: 8883 }, { host: '127.0.0.1', port: 1883 }],
    ['https', 'http', { host: '::', port: 443 }, { host: '127.0.0.1', port: 8080 }],
    ['raw', 'tcp', { host: '127.0.0.1', port: 0 }, undefined]
  ])
  const [mqtt, https, raw] = c.listeners as [ListenerConfig, ListenerConfig, ListenerConfig]
  assert.equal(mqtt.mqttUsernameIsDeviceId, true)
  assert.equal(mqtt.upstreamProxyProtocol, true, 'the environment gives the default')
  assert.equal(raw.upstreamProxyProtocol, false, 'the file overrides it')
  assert.equal(https.httpForwardChain, true)
  assert.equal(https.upstreamProxyProtocol, false, 'never for http')
  assert.equal(https.httpUpstreamTimeoutMs, 2000)
  assert.equal(https.tlsCertFile, resolve('web.pem'))
})

test('CERTGATE_CONFIG: every mistake is a ConfigError naming the file and the listener', () => {
  const bad: Array<[unknown, RegExp]> = [
    ['{ not json', /could not be read as JSON/],
    [[], /must be a JSON object/],
    [{ listeners: [] }, /non-empty array/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt' }], admin: '1' }, /unknown key "admin"/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt', upstreem: 'x:1' }] }, /listeners\[0\]: unknown key "upstreem"/],
    [{ listeners: [{ name: 'A B', listen: '0.0.0.0:1', protocol: 'mqtt' }] }, /listeners\[0\]\.name="A B" must be/],
    [{ listeners: [{ name: 'a', listen: 'nowhere', protocol: 'mqtt' }] }, /listeners\[0\]\.listen="nowhere" is not host:port/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'amqp' }] }, /listeners\[0\]\.protocol="amqp" must be one of tcp, mqtt, http/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'http' }] }, /listeners\[0\]\.upstream must be set/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt', httpForwardChain: 'yes' }] }, /httpForwardChain must be true or false/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt', tlsCert: 'c.pem' }] }, /both tlsCert and tlsKey/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt' }, { name: 'a', listen: '0.0.0.0:2', protocol: 'tcp' }] }, /two listeners are named "a"/],
    [{ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt' }, { name: 'b', listen: '0.0.0.0:1', protocol: 'tcp' }] }, /two listeners listen on 0\.0\.0\.0:1/]
  ]
  for (const [content, pattern] of bad) refused({ CERTGATE_CONFIG: configFile(content) }, /CERTGATE_CONFIG/, pattern)
  refused({ CERTGATE_CONFIG: '/nonexistent/certgate.json' }, /could not be read/)
  refused({ CERTGATE_CONFIG: configFile({ listeners: [{ name: 'a', listen: '0.0.0.0:1', protocol: 'mqtt' }] }), CERTGATE_LISTEN: '0.0.0.0:1' }, /CERTGATE_LISTEN is set and so is CERTGATE_CONFIG/)
})

test('trusted balancers: addresses and CIDR blocks, from the environment or per listener', () => {
  assert.deepEqual(fromEnv({ CERTGATE_TRUSTED_PROXIES: '10.0.0.5, 10.1.0.0/16,fd00::/8 ,::1' }).trustedProxies, ['10.0.0.5', '10.1.0.0/16', 'fd00::/8', '::1'])
  for (const bad of ['10.0.0.0/33', 'fd00::/129', 'balancer.internal', '10.0.0.1/8/1', '10.0.0/8']) {
    refused({ CERTGATE_TRUSTED_PROXIES: bad }, /CERTGATE_TRUSTED_PROXIES/, /is not an IP address or CIDR block/)
  }
  const file = configFile({ listeners: [{ name: 'lb', listen: '0.0.0.0:1', protocol: 'mqtt', trustedProxies: ['192.0.2.0/24'] }, { name: 'direct', listen: '0.0.0.0:2', protocol: 'mqtt' }] })
  const [lb, direct] = configFromEnv({ CERTGATE_CONFIG: file, CERTGATE_TRUSTED_PROXIES: '198.51.100.1' }).listeners
  assert.deepEqual(lb?.trustedProxies, ['192.0.2.0/24'])
  assert.deepEqual(direct?.trustedProxies, ['198.51.100.1'])
  refused({ CERTGATE_CONFIG: configFile({ listeners: [{ name: 'lb', listen: '0.0.0.0:1', protocol: 'mqtt', trustedProxies: '10.0.0.1' }] }) }, /trustedProxies must be an array/)
})
