// What this proves: the scale-out settings are validated like every other. By default the
// registry is the embedded SQLite file and one process runs. CERTGATE_REGISTRY_URL accepts
// postgres:// and postgresql:// URLs (TCP or a Unix socket directory in ?host=) and refuses
// anything else with a ConfigError that names the variable and never echoes a password.
// CERTGATE_PROCESSES is an integer from 1 to 64.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, configFromEnv } from '../config.js'

function refused (env: NodeJS.ProcessEnv, ...patterns: RegExp[]): void {
  assert.throws(() => configFromEnv(env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    for (const p of patterns) assert.match(err.message, p)
    assert.doesNotMatch(err.message, /s3cret/, 'the password is never echoed')
    return true
  }, JSON.stringify(env))
}

test('defaults: SQLite registry, one process', () => {
  const c = configFromEnv({})
  assert.equal(c.registryUrl, undefined)
  assert.equal(c.processes, 1)
  assert.equal(configFromEnv({ CERTGATE_REGISTRY_URL: '' }).registryUrl, undefined)
})

test('CERTGATE_REGISTRY_URL accepts PostgreSQL URLs', () => {
  for (const url of ['postgres://certgate:s3cret@db.example:5432/certgate', 'postgresql://certgate@10.0.0.5/fleet', 'postgres://certgate@/fleet?host=/var/run/postgresql']) {
    assert.equal(configFromEnv({ CERTGATE_REGISTRY_URL: url }).registryUrl, url)
  }
})

test('CERTGATE_REGISTRY_URL refuses what is not a PostgreSQL URL, naming the variable', () => {
  refused({ CERTGATE_REGISTRY_URL: 'mysql://u:s3cret@db/certgate' }, /CERTGATE_REGISTRY_URL/, /scheme "mysql:"/, /postgres:\/\/user:password@host:port\/database/)
  refused({ CERTGATE_REGISTRY_URL: 'db.example:5432' }, /CERTGATE_REGISTRY_URL/)
  refused({ CERTGATE_REGISTRY_URL: 'not a url s3cret' }, /CERTGATE_REGISTRY_URL is not a URL/)
  refused({ CERTGATE_REGISTRY_URL: 'postgres://u:s3cret@db.example:5432' }, /names no database/)
  refused({ CERTGATE_REGISTRY_URL: 'postgres://u:s3cret@/certgate' }, /names no host/)
})

test('CERTGATE_PROCESSES is an integer from 1 to 64', () => {
  assert.equal(configFromEnv({ CERTGATE_PROCESSES: '2' }).processes, 2)
  for (const bad of ['0', '65', 'two', '-1']) refused({ CERTGATE_PROCESSES: bad }, /CERTGATE_PROCESSES="[^"]*" must be an integer from 1 to 64/)
})
