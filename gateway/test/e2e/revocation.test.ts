// What this proves: certificate revocation reaches live connections within a second and refuses
// new ones with `cert_revoked`, from both sources an operator has. The deny-list: a device
// certificate's SHA-256 thumbprint (sent in upper case, stored lower case) closes its connection,
// an intermediate's thumbprint closes every device chained through it, a self-signed device's
// thumbprint closes it; removing the entry lets the device back. CRLs made with `openssl ca
// -gencrl`: one revoking a device (uploaded as PEM, then as base64 DER) and, separately, a root's
// CRL revoking an intermediate close the connections relying on them; a CRL signed by another key
// of the same name, one from another CA, an older one, an expired one, one from the future and
// garbage are refused with their codes and change nothing (the held CRL stays, a device stays
// connected); dropping the CRL lets the device back. A held CRL whose nextUpdate passes stays in
// force, also across a reload, and the metrics show it overdue.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice, roundTrip } from '../support/device.js'
import { opensslCrl } from '../support/openssl-crl.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import { adminCall, type AdminAnswer } from '../support/admin.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }
let issuing: Issued

before(async () => {
  h = await startHarness({ CERTGATE_REFUSAL_MEMORY_S: '0' })
  pki = await issueHierarchy()
  issuing = await issue({ cn: 'certgate Issuing CA', ca: true })
  await h.registerCa('root', pki.root)
  await h.registerCa('issuing', issuing)
})
after(async () => { await h.close() })

type Answer = AdminAnswer
const call = async (method: string, path: string, body?: unknown): Promise<Answer> => await adminCall(h, method, path, body)

const errorCode = (a: Answer): unknown => (a.body.error as { code?: unknown } | undefined)?.code

async function device (id: string, issuer: Issued, chain: readonly Issued[]): Promise<{ leaf: Issued, c: MqttClient }> {
  await h.addDevice(id)
  const leaf = await issue({ cn: id, issuer })
  return { leaf, c: await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain }) }
}

async function refusedAsRevoked (id: string, leaf: Issued, chain: readonly Issued[], source: RegExp): Promise<void> {
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain }))
  const line = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === id && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', source)
}


test('a deny-listed device certificate (thumbprint in upper case) is closed within a second, refused after, and let back when the entry goes', async () => {
  const { leaf, c } = await device('deny-1', pki.int2, [pki.int2, pki.int1])
  const gone = closed(c, 1000)
  const put = await call('PUT', `/revocations/${sha256Hex(leaf.der).toUpperCase()}`, { reason: 'key stolen' })
  assert.equal(put.status, 201)
  assert.equal(put.body.thumbprint, sha256Hex(leaf.der))
  assert.ok(await gone < 1000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'deny-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /device certificate .* deny-list/)
  c.end(true)
  await refusedAsRevoked('deny-1', leaf, [pki.int2, pki.int1], /deny-list/)

  assert.equal((await call('PUT', `/revocations/${sha256Hex(leaf.der)}`, { reason: 'still stolen' })).status, 200)
  const list = await call('GET', '/revocations')
  assert.deepEqual((list.body.value as Array<{ thumbprint: string, reason: string }>).map((r) => [r.thumbprint, r.reason]), [[sha256Hex(leaf.der), 'still stolen']])
  assert.equal(errorCode(await call('PUT', '/revocations/abc', {})), 'invalid_thumbprint')
  assert.equal((await call('DELETE', `/revocations/${sha256Hex(leaf.der).toUpperCase()}`)).status, 204)
  assert.equal((await call('DELETE', `/revocations/${sha256Hex(leaf.der)}`)).status, 404)
  const back = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  await back.endAsync()
})

test('a deny-listed intermediate closes every device chained through it', async () => {
  const one = await device('deny-int-1', pki.int2, [pki.int2, pki.int1])
  const two = await device('deny-int-2', pki.int2, [pki.int2, pki.int1])
  const gone = [closed(one.c, 1000), closed(two.c, 1000)]
  assert.equal((await call('PUT', `/revocations/${sha256Hex(pki.int1.der)}`, { reason: 'intermediate compromised' })).status, 201)
  for (const ms of await Promise.all(gone)) assert.ok(ms < 1000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'deny-int-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /intermediate with SHA-256 thumbprint/)
  one.c.end(true)
  two.c.end(true)
  await refusedAsRevoked('deny-int-2', two.leaf, [pki.int2, pki.int1], /intermediate .* deny-list/)
  assert.equal((await call('DELETE', `/revocations/${sha256Hex(pki.int1.der)}`)).status, 204)
})

test('a deny-listed self-signed device certificate is closed and refused', async () => {
  const leaf = await issue({ cn: 'deny-self' })
  await h.addDevice('deny-self', { authType: 'selfSigned', primaryThumbprint: sha256Hex(leaf.der), secondaryThumbprint: null })
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf })
  const gone = closed(c, 1000)
  assert.equal((await call('PUT', `/revocations/${sha256Hex(leaf.der)}`, {})).status, 201)
  assert.ok(await gone < 1000)
  c.end(true)
  await refusedAsRevoked('deny-self', leaf, [], /deny-list/)
})

test('a CRL revoking a device, uploaded as PEM, closes it within a second; as base64 DER it is accepted too; dropping it lets the device back', async () => {
  const { leaf, c } = await device('crl-1', issuing, [])
  const bystander = await device('crl-2', issuing, [])
  // Made before the clock starts: the second counts from the upload, not from openssl's run.
  const crl = await opensslCrl({ ca: issuing, revoked: [leaf], crlNumber: 5 })
  const gone = closed(c, 1000)
  const put = await call('PUT', '/certificates/issuing/crl', { crl })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  assert.equal(put.body.revokedCount, 1)
  assert.equal(put.body.crlNumber, 5)
  assert.match(String(put.body.issuer), /CN=certgate Issuing CA/)
  assert.equal(typeof put.body.thisUpdate, 'string')
  assert.equal(typeof put.body.nextUpdate, 'string')
  assert.ok(await gone < 1000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'crl-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /CRL of CA "issuing"/)
  c.end(true)
  await refusedAsRevoked('crl-1', leaf, [], /CRL of CA "issuing"/)
  await roundTrip(bystander.c, 'crl/bystander')

  const pem = await opensslCrl({ ca: issuing, revoked: [leaf], crlNumber: 6 })
  const der = pem.replace(/-----[A-Z0-9 ]+-----/g, '').replace(/\s+/g, '')
  const again = await call('PUT', '/certificates/issuing/crl', { crl: der })
  assert.equal(again.status, 200, JSON.stringify(again.body))
  assert.equal(again.body.crlNumber, 6)
  assert.equal((await call('GET', '/certificates/issuing/crl')).body.crlNumber, 6)
  const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  assert.match(metrics, /^certgate_crl_revoked_certificates\{ca="issuing"\} 1$/m)
  assert.match(metrics, /^certgate_crl_next_update_seconds\{ca="issuing"\} \d+$/m)
  assert.match(metrics, /^certgate_auth_total\{listener="device",result="refused",reason="cert_revoked"\} [1-9]/m)

  assert.equal((await call('DELETE', '/certificates/issuing/crl')).status, 204)
  assert.equal((await call('GET', '/certificates/issuing/crl')).status, 404)
  const back = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf })
  await back.endAsync()
  await bystander.c.endAsync()
})

test('a root\'s CRL revoking an intermediate closes the devices chained through it', async () => {
  const { leaf, c } = await device('crl-int-1', pki.int2, [pki.int2, pki.int1])
  const crl = await opensslCrl({ ca: pki.root, revoked: [pki.int1] })
  const gone = closed(c, 1000)
  const put = await call('PUT', '/certificates/root/crl', { crl })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  assert.ok(await gone < 1000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'crl-int-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /intermediate with serial .* CRL of CA "root"/)
  c.end(true)
  await refusedAsRevoked('crl-int-1', leaf, [pki.int2, pki.int1], /CRL of CA "root"/)
  assert.equal((await call('DELETE', '/certificates/root/crl')).status, 204)
})

test('wrong-key, other-CA, older, expired, future and garbage CRLs are refused with their codes and change nothing', async () => {
  const held = await call('PUT', '/certificates/issuing/crl', { crl: await opensslCrl({ ca: issuing, crlNumber: 10 }) })
  assert.equal(held.status, 200, JSON.stringify(held.body))
  const { c } = await device('crl-stays', issuing, [])
  const impostor = await issue({ cn: 'certgate Issuing CA', ca: true }) // same name, another key
  const hour = 3_600_000
  const cases: Array<[string, string, string]> = [
    ['wrong key', await opensslCrl({ ca: impostor, revoked: [], crlNumber: 11 }), 'crl_bad_signature'],
    ['another CA', await opensslCrl({ ca: pki.root, crlNumber: 11 }), 'crl_issuer_mismatch'],
    ['older', await opensslCrl({ ca: issuing, crlNumber: 9 }), 'crl_older_than_held'],
    ['expired', await opensslCrl({ ca: issuing, crlNumber: 12, thisUpdate: new Date(Date.now() - 3 * hour), nextUpdate: new Date(Date.now() - hour) }), 'crl_stale'],
    ['future', await opensslCrl({ ca: issuing, crlNumber: 12, thisUpdate: new Date(Date.now() + hour), nextUpdate: new Date(Date.now() + 2 * hour) }), 'crl_not_yet_valid'],
    ['garbage', 'this is not a CRL', 'malformed_crl'],
    ['truncated DER', Buffer.from([0x30, 0x82, 0x01, 0x00, 0x30]).toString('base64'), 'malformed_crl'],
    ['a certificate', issuing.pem, 'malformed_crl']
  ]
  for (const [what, crl, code] of cases) {
    const answer = await call('PUT', '/certificates/issuing/crl', { crl })
    assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer.body)}`)
    assert.equal(errorCode(answer), code, what)
  }
  assert.deepEqual((await call('GET', '/certificates/issuing/crl')).body, held.body)
  await roundTrip(c, 'crl/stays')
  await c.endAsync()
  assert.equal((await call('PUT', '/certificates/nosuch/crl', { crl: 'x' })).status, 404)
})

test('a held CRL whose nextUpdate passes stays in force: the device it lists is still refused, and the metrics show it overdue', async () => {
  await h.addDevice('crl-lapsed')
  const leaf = await issue({ cn: 'crl-lapsed', issuer: issuing })
  // Newer than every CRL the tests above left held; it lapses 3 s after it is made.
  const crl = await opensslCrl({ ca: issuing, revoked: [leaf], crlNumber: 20, thisUpdate: new Date(Date.now() - 60_000), nextUpdate: new Date(Date.now() + 3000) })
  const put = await call('PUT', '/certificates/issuing/crl', { crl })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  // The event that matters: the gateway itself reports the CRL overdue (bounded wait, polled).
  const deadline = Date.now() + 10_000
  let overdue: RegExpExecArray | null = null
  while (overdue === null && Date.now() < deadline) {
    const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    overdue = /^certgate_crl_next_update_seconds\{ca="issuing"\} (-[1-9]\d*)$/m.exec(metrics)
    if (overdue === null) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  assert.ok(overdue !== null, 'certgate_crl_next_update_seconds never went negative')
  assert.equal((await call('GET', '/certificates/issuing/crl')).body.crlNumber, 20)
  await refusedAsRevoked('crl-lapsed', leaf, [], /CRL of CA "issuing"/)
  // Revocation is reloaded from the registry after the CRL lapsed (an unrelated deny-list entry):
  // the reload keeps it too. The deny-list gauge moving shows the new snapshot is installed.
  const deniedNow = async (): Promise<number> => Number(/^certgate_denied_certificates (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text())?.[1])
  const before = await deniedNow()
  assert.equal((await call('PUT', `/revocations/${'ab'.repeat(32)}`, {})).status, 201)
  const until = Date.now() + 5000
  while (await deniedNow() === before && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(await deniedNow(), before + 1)
  await refusedAsRevoked('crl-lapsed', leaf, [], /CRL of CA "issuing"/)
  assert.equal((await call('DELETE', `/revocations/${'ab'.repeat(32)}`)).status, 204)
})
