// What this proves: the certificate resource carries the CA's revocation settings (`crlUrls`,
// `ocsp` with responders and policy) on a real gateway's admin API. They are returned on every
// certificate resource (none by default; policy "closed" by default). A re-PUT of the same
// certificate with other settings updates only them: the CA stays verified, gets a new etag,
// If-Match is honoured, and the change is audited. A body without them means none. Bad settings
// are refused with `invalid_crl_urls` or `invalid_ocsp` and change nothing.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { adminCall } from '../support/admin.js'

let h: Harness
let ca: Issued

before(async () => {
  h = await startHarness()
  ca = await issue({ cn: 'certgate Settings CA', ca: true })
})
after(async () => { await h.close() })

test('settings are returned, updated alone on the same certificate (still verified, new etag, If-Match), and omitted means none', async () => {
  const created = await adminCall(h, 'PUT', '/certificates/settings', { certificate: ca.pem })
  assert.equal(created.status, 201)
  assert.deepEqual(created.body.crlUrls, [])
  assert.equal(created.body.ocsp, null)
  await h.registerCa('settings', ca)
  const verified = await adminCall(h, 'GET', '/certificates/settings')
  assert.equal(verified.body.isVerified, true)

  const body = { certificate: ca.pem, crlUrls: ['http://pki.example/a.crl', 'https://pki.example/b.crl'], ocsp: { responders: ['http://ocsp.example:8080/'] } }
  assert.equal((await adminCall(h, 'PUT', '/certificates/settings', body, { 'if-match': 'stale' })).status, 412)
  const updated = await adminCall(h, 'PUT', '/certificates/settings', body, { 'if-match': verified.etag ?? '' })
  assert.equal(updated.status, 200, JSON.stringify(updated.body))
  assert.equal(updated.body.isVerified, true)
  assert.notEqual(updated.etag, verified.etag)
  assert.deepEqual(updated.body.crlUrls, body.crlUrls)
  assert.deepEqual(updated.body.ocsp, { responders: body.ocsp.responders, policy: 'closed' }, 'closed by default')
  const got = await adminCall(h, 'GET', '/certificates/settings')
  assert.deepEqual(got.body, updated.body)
  const listed = (await adminCall(h, 'GET', '/certificates')).body.value as Array<Record<string, unknown>>
  assert.deepEqual(listed.find((c) => c.name === 'settings')?.ocsp, updated.body.ocsp)

  const open = await adminCall(h, 'PUT', '/certificates/settings', { certificate: ca.pem, ocsp: { responders: ['http://ocsp.example/'], policy: 'open' } })
  assert.deepEqual(open.body.ocsp, { responders: ['http://ocsp.example/'], policy: 'open' })
  assert.deepEqual(open.body.crlUrls, [], 'the body is the whole desired state: crlUrls omitted = none')
  const none = await adminCall(h, 'PUT', '/certificates/settings', { certificate: ca.pem })
  assert.equal(none.body.ocsp, null)
  assert.equal(none.body.isVerified, true)

  const audit = readFileSync(join(h.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string, resource: string, status: number })
  assert.ok(audit.filter((l) => l.action === 'PUT /certificates/{id}' && l.status === 200).length >= 3, 'settings changes are audited')
})

test('bad settings are refused with specific codes and change nothing', async () => {
  await adminCall(h, 'PUT', '/certificates/refused', { certificate: ca.pem, crlUrls: ['http://pki.example/ok.crl'] })
  const before = await adminCall(h, 'GET', '/certificates/refused')
  const long = 'http://pki.example/' + 'a'.repeat(2048)
  const cases: Array<[unknown, unknown, string]> = [
    ['not an array', undefined, 'invalid_crl_urls'],
    [['ftp://pki.example/a.crl'], undefined, 'invalid_crl_urls'],
    [['/relative.crl'], undefined, 'invalid_crl_urls'],
    [['http://user:secret@pki.example/a.crl'], undefined, 'invalid_crl_urls'],
    [[long], undefined, 'invalid_crl_urls'],
    [Array.from({ length: 9 }, (_, i) => `http://pki.example/${i}.crl`), undefined, 'invalid_crl_urls'],
    [['http://pki.example/a.crl', 'http://pki.example/a.crl'], undefined, 'invalid_crl_urls'],
    [undefined, { responders: [] }, 'invalid_ocsp'],
    [undefined, { responders: ['http://a/', 'http://b/', 'http://c/', 'http://d/', 'http://e/'] }, 'invalid_ocsp'],
    [undefined, { responders: ['file:///etc/passwd'] }, 'invalid_ocsp'],
    [undefined, { responders: ['http://ocsp.example/'], policy: 'maybe' }, 'invalid_ocsp'],
    [undefined, { responders: ['http://ocsp.example/'], extra: 1 }, 'invalid_ocsp'],
    [undefined, 'http://ocsp.example/', 'invalid_ocsp']
  ]
  for (const [crlUrls, ocsp, code] of cases) {
    const r = await adminCall(h, 'PUT', '/certificates/refused', { certificate: ca.pem, ...(crlUrls === undefined ? {} : { crlUrls }), ...(ocsp === undefined ? {} : { ocsp }) })
    assert.equal(r.status, 400, JSON.stringify({ crlUrls, ocsp }))
    assert.equal((r.body.error as { code: string }).code, code, JSON.stringify({ crlUrls, ocsp }))
  }
  assert.deepEqual(await adminCall(h, 'GET', '/certificates/refused'), before)
})
