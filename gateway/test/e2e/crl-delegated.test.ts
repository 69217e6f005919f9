// What this proves: a CRL signed by an intermediate under a registered CA (a delegated CRL issuer,
// RFC 5280 §6.3.3 (f)) is taken when the operator uploads it with that intermediate's certificate
// (and the one between it and the CA): made with `openssl ca -gencrl` by the intermediate, it closes
// a connected device it revokes within a second and refuses it after with `cert_revoked`, naming
// the intermediate; a device under the same intermediate it does not list stays. It is held beside
// the CA's own CRL (one per issuer: listed, fetched and dropped by issuer thumbprint), and
// dropping it lets the device back. Refused with `crl_issuer_mismatch`, changing nothing: the
// intermediate's CRL without its certificate, with an intermediate lacking cRLSign, with one not
// under the CA, and with a certificate that did not sign the CRL; garbage certificates are
// `malformed_issuer_certificate`.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
// issue.js first: it loads reflect-metadata and sets the crypto provider @peculiar/x509 needs.
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import * as x509 from '@peculiar/x509'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice, roundTrip } from '../support/device.js'
import { opensslCrl } from '../support/openssl-crl.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import { adminCall, type AdminAnswer } from '../support/admin.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness({ CERTGATE_REFUSAL_MEMORY_S: '0' })
  pki = await issueHierarchy({ rootCn: 'certgate Delegating Root' })
  await h.registerCa('root', pki.root)
})
after(async () => { await h.close() })

const call = async (method: string, path: string, body?: unknown): Promise<AdminAnswer> => await adminCall(h, method, path, body)
const errorCode = (a: AdminAnswer): unknown => (a.body.error as { code?: unknown } | undefined)?.code

async function device (id: string): Promise<{ leaf: Issued, c: MqttClient }> {
  await h.addDevice(id)
  const leaf = await issue({ cn: id, issuer: pki.int2 })
  return { leaf, c: await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }) }
}

test('a CRL signed by an intermediate under the CA, uploaded with its certificate, closes the device it revokes within a second and refuses it after', async () => {
  const { leaf, c } = await device('deleg-1')
  const bystander = await device('deleg-2')
  const own = await call('PUT', '/certificates/root/crl', { crl: await opensslCrl({ ca: pki.root, crlNumber: 7 }) })
  assert.equal(own.status, 200, JSON.stringify(own.body))
  assert.equal(own.body.issuerThumbprint, null)
  // Lower number than the CA's own: numbers are ordered per issuer.
  const crl = await opensslCrl({ ca: pki.int2, revoked: [leaf], crlNumber: 2 })
  const gone = closed(c, 1000)
  // The intermediate that signed it first, then the one between it and the CA (in a chain file's order).
  const put = await call('PUT', '/certificates/root/crl', { crl, issuerCertificate: pki.int2.pem + pki.int1.pem })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  assert.equal(put.body.issuerThumbprint, sha256Hex(pki.int2.der))
  assert.match(String(put.body.issuer), /CN=certgate Intermediate 2/)
  assert.equal(put.body.revokedCount, 1)
  assert.ok(await gone < 1000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'deleg-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /device certificate with serial .* CRL of intermediate "certgate Intermediate 2" .* under CA "root"/)
  c.end(true)
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  const refused = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'deleg-1' && l.reason === 'cert_revoked')
  assert.match(refused.detail ?? '', /CRL of intermediate "certgate Intermediate 2"/)
  await roundTrip(bystander.c, 'deleg/bystander')
  // The CA's gauges cover its own CRL (nothing listed) and the intermediate's (one serial) together.
  const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  assert.match(metrics, /^certgate_crl_revoked_certificates\{ca="root"\} 1$/m)

  const list = await call('GET', '/certificates/root/crls')
  assert.deepEqual((list.body.value as Array<{ issuerThumbprint: string | null, crlNumber: number }>).map((x) => [x.issuerThumbprint, x.crlNumber]),
    [[null, 7], [sha256Hex(pki.int2.der), 2]])
  assert.equal((await call('GET', `/certificates/root/crl?issuerThumbprint=${sha256Hex(pki.int2.der).toUpperCase()}`)).body.crlNumber, 2)
  assert.equal((await call('GET', '/certificates/root/crl')).body.crlNumber, 7)
  assert.equal(errorCode(await call('GET', '/certificates/root/crl?issuerThumbprint=xyz')), 'invalid_thumbprint')
  // Dropping the CA's own CRL leaves the intermediate's in force.
  assert.equal((await call('DELETE', '/certificates/root/crl')).status, 204)
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'deleg-1' && l.reason === 'cert_revoked')

  assert.equal((await call('DELETE', `/certificates/root/crl?issuerThumbprint=${sha256Hex(pki.int2.der)}`)).status, 204)
  assert.equal((await call('GET', `/certificates/root/crl?issuerThumbprint=${sha256Hex(pki.int2.der)}`)).status, 404)
  assert.deepEqual((await call('GET', '/certificates/root/crls')).body.value, [])
  const back = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  await back.endAsync()
  await bystander.c.endAsync()
})

test('an intermediate without cRLSign, one not under the CA, a certificate that did not sign the CRL, or none at all: crl_issuer_mismatch, and nothing changes', async () => {
  const { leaf, c } = await device('deleg-stays')
  const noCrlSign = await issue({ cn: 'certgate No cRLSign', ca: true, issuer: pki.int1, keyUsage: x509.KeyUsageFlags.keyCertSign })
  const elsewhere = await issueHierarchy({ rootCn: 'certgate Unregistered Root' })
  const cases: Array<[string, { crl: string, issuerCertificate?: string }, string]> = [
    ['no issuer certificate', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }) }, 'crl_issuer_mismatch'],
    ['no cRLSign', { crl: await opensslCrl({ ca: noCrlSign, revoked: [leaf] }), issuerCertificate: noCrlSign.pem + pki.int1.pem }, 'crl_issuer_mismatch'],
    ['not under the CA', { crl: await opensslCrl({ ca: elsewhere.int2, revoked: [leaf] }), issuerCertificate: elsewhere.int2.pem + elsewhere.int1.pem }, 'crl_issuer_mismatch'],
    ['missing the intermediate between', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }), issuerCertificate: pki.int2.pem }, 'crl_issuer_mismatch'],
    ['another intermediate signed it', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }), issuerCertificate: pki.int1.pem }, 'crl_issuer_mismatch'],
    ['garbage certificate', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }), issuerCertificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }, 'malformed_issuer_certificate'],
    ['no certificate', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }), issuerCertificate: 'hello' }, 'malformed_issuer_certificate']
  ]
  for (const [what, body, code] of cases) {
    const answer = await call('PUT', '/certificates/root/crl', body)
    assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer.body)}`)
    assert.equal(errorCode(answer), code, what)
  }
  assert.deepEqual((await call('GET', '/certificates/root/crls')).body.value, [])
  await roundTrip(c, 'deleg/stays')
  await c.endAsync()
  assert.equal((await call('GET', '/certificates/nosuch/crls')).status, 404)
})
