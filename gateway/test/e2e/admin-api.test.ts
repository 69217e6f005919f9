// What this proves: an operator can do the whole IoT Hub X.509 CA flow over the admin API alone —
// upload a CA, get a verification code, prove possession with a certificate signed by the CA's
// key, enroll devices — and watch a device connect; every wrong step gets a 4xx with a specific
// error code: proof of possession with a wrong CN, another key, a reused code, an expired code, a
// code issued for a certificate since replaced; uploads holding private keys, non-CA, expired or
// garbage certificates; missing and wrong tokens (401), oversized bodies (413), malformed JSON,
// invalid deviceIds, unknown fields, stale ETags (412). Disabling a connected device through the
// API closes its live MQTT connection within a second. The audit log records every change and
// holds no secrets (no token, no verification code, no certificate).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice } from '../support/device.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }
let base: string
// The gateway's clock, moved forward to expire a verification code instead of waiting for it.
let clockAheadMs = 0

before(async () => {
  h = await startHarness({ CERTGATE_VERIFICATION_CODE_TTL_S: '60' }, { now: () => Date.now() + clockAheadMs })
  pki = await issueHierarchy()
  base = `http://127.0.0.1:${h.gw.admin.port}`
})
after(async () => { await h.close() })

interface Answer { status: number, body: Record<string, unknown> & { error?: { code: string, message: string } }, etag: string | null }

async function call (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${h.gw.adminToken}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Answer['body'], etag: res.headers.get('etag') }
}

const errorCode = (a: Answer): string | undefined => a.body.error?.code

async function codeFor (name: string): Promise<string> {
  const r = await call('POST', `/certificates/${name}/generateVerificationCode`)
  assert.equal(r.status, 200)
  const code = r.body.verificationCode
  assert.ok(typeof code === 'string' && /^[0-9A-F]{32}$/.test(code), `code ${String(code)}`)
  assert.ok(typeof r.body.verificationCodeExpiry === 'string')
  return code
}

test('the whole flow over HTTP: upload, prove possession, enroll, connect', async () => {
  const up = await call('PUT', '/certificates/fleet', { certificate: pki.root.pem })
  assert.equal(up.status, 201)
  assert.equal(up.body.isVerified, false)
  assert.equal(up.body.name, 'fleet')
  for (const k of ['subject', 'thumbprint', 'expiry', 'etag']) assert.ok(typeof up.body[k] === 'string', k)

  // Not verified yet: a device under it is refused.
  await call('PUT', '/devices/flow-1', { authentication: { type: 'certificateAuthority' }, status: 'enabled' })
  const leaf = await issue({ cn: 'flow-1', issuer: pki.int2 })
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))

  const code = await codeFor('fleet')
  const proof = await issue({ cn: code, issuer: pki.root, eku: [] })
  const verified = await call('POST', '/certificates/fleet/verify', { certificate: proof.pem })
  assert.equal(verified.status, 200)
  assert.equal(verified.body.isVerified, true)

  const list = await call('GET', '/certificates')
  assert.ok(Array.isArray(list.body.value) && list.body.value.length >= 1)
  const device = await call('GET', '/devices/flow-1')
  assert.equal(device.status, 200)
  assert.deepEqual(device.body.authentication, { type: 'certificateAuthority', x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null } })

  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  assert.equal((await call('GET', '/devices/flow-1')).body.connectionState, 'Connected')
  await c.endAsync()
})

test('proof of possession is refused for a wrong CN, another key, a reused or expired code, a replaced certificate', async () => {
  const other = await issueHierarchy({ rootCn: 'PoP Root' })
  assert.equal((await call('PUT', '/certificates/pop', { certificate: other.root.pem })).status, 201)

  let code = await codeFor('pop')
  const wrongCn = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: 'not-the-code', issuer: other.root })).pem })
  assert.equal(wrongCn.status, 400)
  assert.equal(errorCode(wrongCn), 'verification_cn_mismatch')

  const impostor = await issue({ cn: 'PoP Root', ca: true })
  const wrongKey = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: code, issuer: impostor })).pem })
  assert.equal(errorCode(wrongKey), 'verification_wrong_signer')

  const ok = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: code, issuer: other.root })).pem })
  assert.equal(ok.status, 200)
  const reused = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: code, issuer: other.root })).pem })
  assert.equal(errorCode(reused), 'no_verification_code')

  code = await codeFor('pop')
  clockAheadMs += 60_001 // past CERTGATE_VERIFICATION_CODE_TTL_S=60: no real wait, and no code expiring early on a slow machine
  const expired = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: code, issuer: other.root })).pem })
  assert.equal(errorCode(expired), 'verification_code_expired')

  code = await codeFor('pop')
  const replacement = await issue({ cn: 'PoP Root 2', ca: true })
  assert.equal((await call('PUT', '/certificates/pop', { certificate: replacement.pem })).status, 200)
  const replaced = await call('POST', '/certificates/pop/verify', { certificate: (await issue({ cn: code, issuer: other.root })).pem })
  assert.equal(errorCode(replaced), 'certificate_replaced')
  assert.equal((await call('GET', '/certificates/pop')).body.isVerified, false)
})

test('uploads are refused for private keys, non-CA and expired certificates, garbage', async () => {
  const cases: Array<[string, string]> = [
    [pki.root.pem + pki.root.keyPem, 'private_key_in_upload'],
    [pki.root.keyPem.replace(/PRIVATE KEY/g, 'ENCRYPTED PRIVATE KEY'), 'private_key_in_upload'],
    [(await issue({ cn: 'leafy', issuer: pki.root })).pem, 'not_a_ca'],
    [(await issue({ cn: 'Old CA', ca: true, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })).pem, 'ca_expired'],
    ['this is not a certificate', 'malformed_pem']
  ]
  for (const [pem, code] of cases) {
    const r = await call('PUT', '/certificates/bad', { certificate: pem })
    assert.equal(r.status, 400, code)
    assert.equal(errorCode(r), code)
    assert.ok((r.body.error?.message ?? '').length > 20, 'a message a person can act on')
  }
  assert.equal((await call('GET', '/certificates/bad')).status, 404)
})

test('401 without or with a wrong token; /healthz and /metrics need none', async () => {
  assert.equal((await fetch(`${base}/devices`)).status, 401)
  const wrong = await fetch(`${base}/devices`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } })
  assert.equal(wrong.status, 401)
  assert.equal(((await wrong.json()) as Answer['body']).error?.code, 'unauthorized')
  assert.equal((await fetch(`${base}/healthz`)).status, 200)
  const metrics = await fetch(`${base}/metrics`)
  assert.equal(metrics.status, 200)
  assert.match(await metrics.text(), /certgate_auth_total/)
})

test('413 for oversized bodies, 400 for malformed JSON, unknown fields and invalid deviceIds, 405 for wrong methods', async () => {
  const big = await call('PUT', '/devices/big', JSON.stringify({ authentication: { type: 'certificateAuthority' }, statusReason: 'x'.repeat(300_000) }))
  assert.equal(big.status, 413)
  assert.equal(errorCode(await call('PUT', '/devices/j', '{"authentication":')), 'malformed_json')
  assert.equal(errorCode(await call('PUT', '/devices/u', { authentication: { type: 'certificateAuthority' }, colour: 'blue' })), 'unknown_field')
  for (const id of ['has space', 'slash%2Fx', 'x'.repeat(129), 'caf%C3%A9']) {
    const r = await call('PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' } })
    assert.equal(r.status, 400, id)
    assert.equal(errorCode(r), 'invalid_device_id', id)
  }
  assert.equal((await call('PUT', '/devices/a/b', { authentication: { type: 'certificateAuthority' } })).status, 404)
  assert.equal((await call('POST', '/devices/x', {})).status, 405)
  assert.equal(errorCode(await call('PUT', '/devices/ss', { authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: 'abc' } } })), 'invalid_thumbprint')
})

test('ETags: If-Match with a stale etag is 412, with the current one it applies; lists are paged', async () => {
  const created = await call('PUT', '/devices/etag-1', { authentication: { type: 'certificateAuthority' } })
  assert.equal(created.status, 201)
  const etag = created.body.etag as string
  assert.equal(created.etag, `"${etag}"`)
  const changed = await call('PUT', '/devices/etag-1', { authentication: { type: 'certificateAuthority' }, status: 'disabled' }, { 'if-match': `"${etag}"` })
  assert.equal(changed.status, 200)
  const stale = await call('PUT', '/devices/etag-1', { authentication: { type: 'certificateAuthority' } }, { 'if-match': `"${etag}"` })
  assert.equal(stale.status, 412)
  assert.equal(errorCode(stale), 'precondition_failed')
  assert.equal((await call('DELETE', '/devices/etag-1', undefined, { 'if-match': etag })).status, 412)

  for (let i = 0; i < 5; i++) await call('PUT', `/devices/page-${i}`, { authentication: { type: 'certificateAuthority' } })
  const seen: string[] = []
  let token: string | null = null
  do {
    const res = await fetch(`${base}/devices?top=2`, { headers: { authorization: `Bearer ${h.gw.adminToken}`, ...(token === null ? {} : { 'x-ms-continuation': token }) } })
    const page = await res.json() as Array<{ deviceId: string }>
    assert.ok(page.length <= 2)
    seen.push(...page.map((d) => d.deviceId))
    token = res.headers.get('x-ms-continuation')
  } while (token !== null)
  for (let i = 0; i < 5; i++) assert.ok(seen.includes(`page-${i}`))
  assert.equal(new Set(seen).size, seen.length, 'no device twice')
})

test('disabling a connected device through the API closes its MQTT connection within a second', async () => {
  await call('PUT', '/devices/live-api', { authentication: { type: 'certificateAuthority' }, status: 'enabled' })
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'live-api', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
  const gone = closed(c, 1000)
  const t0 = Date.now()
  const r = await call('PUT', '/devices/live-api', { authentication: { type: 'certificateAuthority' }, status: 'disabled', statusReason: 'decommissioned' })
  assert.equal(r.status, 200)
  await gone
  const ms = Date.now() - t0
  assert.ok(ms < 1000, `closed ${ms} ms after the API call`)
  c.end(true)
  assert.equal((await call('DELETE', '/devices/live-api')).status, 204)
  assert.equal((await call('GET', '/devices/live-api')).status, 404)
})

test('the audit log records changes and holds no secrets', () => {
  const log = readFileSync(join(h.dataDir, 'audit.log'), 'utf8')
  const lines = log.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.ok(lines.length > 10)
  for (const l of lines) for (const k of ['time', 'caller', 'action', 'resource', 'result']) assert.ok(k in l, k)
  assert.ok(lines.some((l) => l.action === 'PUT /certificates/{id}' && l.result === 'ok'))
  assert.ok(lines.some((l) => l.action === 'POST /certificates/{id}/verify' && l.error === 'verification_cn_mismatch'))
  assert.ok(lines.some((l) => l.action === 'DELETE /devices/{id}' && l.status === 204))
  assert.ok(!log.includes(h.gw.adminToken), 'no token')
  assert.ok(!log.includes('BEGIN'), 'no PEM')
  assert.doesNotMatch(log, /[0-9A-F]{32}/, 'no verification code')
})
