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
import { ConfigError, configFromEnv, parseHostPort } from '../config.js'

function refused (env: NodeJS.ProcessEnv, ...patterns: RegExp[]): void {
  assert.throws(() => configFromEnv(env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    for (const p of patterns) assert.match(err.message, p)
    return true
  }, JSON.stringify(env))
}

test('an empty environment gives the defaults', () => {
  const c = configFromEnv({})
  assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8883 })
  assert.deepEqual(c.adminListen, { host: '127.0.0.1', port: 8080 })
  assert.equal(c.protocol, 'mqtt')
  assert.equal(c.upstream, undefined)
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
  assert.throws(() => { (c as { protocol: string }).protocol = 'tcp' }, TypeError)
  assert.equal(c.protocol, 'mqtt')
})

test('addresses: IPv4, bracketed IPv6, names and port 0', () => {
  const c = configFromEnv({ CERTGATE_LISTEN: '[::1]:8883', CERTGATE_ADMIN_LISTEN: 'localhost:0', CERTGATE_UPSTREAM: '10.0.0.5:1883' })
  assert.deepEqual(c.listen, { host: '::1', port: 8883 })
  assert.deepEqual(c.adminListen, { host: 'localhost', port: 0 })
  assert.deepEqual(c.upstream, { host: '10.0.0.5', port: 1883 })
  assert.deepEqual(configFromEnv({ CERTGATE_LISTEN: '[::]:65535' }).listen, { host: '::', port: 65535 })
  assert.deepEqual(parseHostPort('[fe80::1:2]:1', 'X'), { host: 'fe80::1:2', port: 1 })
  assert.equal(configFromEnv({ CERTGATE_UPSTREAM: '' }).upstream, undefined, 'empty upstream means the embedded broker')
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
  assert.equal(configFromEnv({ CERTGATE_PROTOCOL: 'tcp' }).protocol, 'tcp')
  assert.equal(configFromEnv({ CERTGATE_PROTOCOL: 'http' }).protocol, 'http')
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
  const http = (u: string): ReturnType<typeof configFromEnv>['upstream'] => configFromEnv({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: u }).upstream
  assert.deepEqual(http('http://127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 })
  assert.deepEqual(http('http://backend.internal'), { host: 'backend.internal', port: 80 })
  assert.deepEqual(http('http://[::1]:8081/'), { host: '::1', port: 8081 })
  assert.deepEqual(http('http://Backend:8080/api'), { host: 'backend', port: 8080 })
  for (const bad of ['https://backend:443', 'backend:8080', 'not a url', 'mqtt://broker:1883']) {
    refused({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: bad }, /CERTGATE_UPSTREAM/, /http:\/\/host:port/)
  }
})
