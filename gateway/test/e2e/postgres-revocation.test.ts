// What this proves: revocation is fleet-wide. Two gateways share one PostgreSQL registry (a real
// throwaway cluster); a device connected to gateway B is closed within a second of gateway A
// answering a deny-list entry, and another one within a second of A accepting a CRL (made with
// `openssl ca -gencrl`) that revokes it — the CA's own, or an intermediate's uploaded for the root
// above it (a delegated CRL issuer); they are refused by B afterwards with `cert_revoked`.
// The change reaches B as a PostgreSQL notification sent in the same transaction as the write.
// OCSP settings set on the CAs through A reach B too: a device connected to B is asked about
// (`openssl ocsp -index`), and a revoked answer closes it there and refuses it after.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import type { Harness } from '../support/harness.js'
import { closed, connectDevice, connectDeviceSoon } from '../support/device.js'
import { startPostgresFleet, type PostgresFleet } from '../support/postgres-fleet.js'
import { opensslCrl } from '../support/openssl-crl.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import { adminCall } from '../support/admin.js'
import { startOpensslOcsp } from '../support/openssl-ocsp.js'

let fleet: PostgresFleet<'a' | 'b'> | undefined
let a: Harness
let b: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  fleet = await startPostgresFleet('revocation', { a: {}, b: { CERTGATE_REFUSAL_MEMORY_S: '0' } })
  ;({ a, b } = fleet.gateways)
  pki = await issueHierarchy()
  await a.registerCa('root', pki.root)
  await a.registerCa('int2', pki.int2)
})
after(async () => { await fleet?.close() })

const call = adminCall

/** Connects to B, retrying for a short bounded while (the CAs registered through A reach B asynchronously). */
async function connectToB (leaf: Issued): Promise<MqttClient> {
  return await connectDeviceSoon({ port: b.gw.device.port, serverCa: b.serverCa, leaf, chain: [pki.int2, pki.int1] }, 3000)
}

test('a deny-list entry made through A closes the device on B within a second', async () => {
  await a.addDevice('pg-deny')
  const leaf = await issue({ cn: 'pg-deny', issuer: pki.int2 })
  const c = await connectToB(leaf)
  const gone = closed(c, 2000)
  assert.equal((await call(a, 'PUT', `/revocations/${sha256Hex(leaf.der)}`, { reason: 'stolen' })).status, 201)
  const answered = Date.now()
  await gone
  assert.ok(Date.now() - answered < 1000, `closed ${Date.now() - answered} ms after A answered`)
  await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'pg-deny' && l.reason === 'cert_revoked')
  c.end(true)
  await assert.rejects(connectDevice({ port: b.gw.device.port, serverCa: b.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  await b.waitForLog((l) => l.event === 'refused' && l.deviceId === 'pg-deny' && l.reason === 'cert_revoked')
})

test('a CRL accepted through A closes the device it revokes on B within a second', async () => {
  await a.addDevice('pg-crl')
  const leaf = await issue({ cn: 'pg-crl', issuer: pki.int2 })
  const c = await connectToB(leaf)
  const gone = closed(c, 2000)
  const put = await call(a, 'PUT', '/certificates/int2/crl', { crl: await opensslCrl({ ca: pki.int2, revoked: [leaf] }) })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  const answered = Date.now()
  await gone
  assert.ok(Date.now() - answered < 1000, `closed ${Date.now() - answered} ms after A answered`)
  const line = await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'pg-crl' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /CRL of CA "int2"/)
  c.end(true)
  assert.equal((await call(b, 'GET', '/certificates/int2/crl')).body.revokedCount, 1)
})

test('a CRL of an intermediate, accepted through A for the root above it, closes the device it revokes on B within a second', async () => {
  await a.addDevice('pg-deleg')
  const leaf = await issue({ cn: 'pg-deleg', issuer: pki.int2 })
  const c = await connectToB(leaf)
  const gone = closed(c, 2000)
  const crl = await opensslCrl({ ca: pki.int2, revoked: [leaf], crlNumber: 3 })
  const put = await call(a, 'PUT', '/certificates/root/crl', { crl, issuerCertificate: pki.int2.pem + pki.int1.pem })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  const answered = Date.now()
  await gone
  assert.ok(Date.now() - answered < 1000, `closed ${Date.now() - answered} ms after A answered`)
  const line = await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'pg-deleg' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /CRL of intermediate "certgate Intermediate 2" .* under CA "root"/)
  c.end(true)
  const listed = await call(b, 'GET', '/certificates/root/crls')
  assert.deepEqual((listed.body.value as Array<{ issuerThumbprint: string }>).map((x) => x.issuerThumbprint), [sha256Hex(pki.int2.der)])
})

test('OCSP settings set through A reach B: a device B lets in is asked about, and a revoked answer closes and refuses it there', async () => {
  const responder = await startOpensslOcsp({ ca: pki.int2 })
  try {
    await a.addDevice('pg-ocsp')
    const leaf = await issue({ cn: 'pg-ocsp', issuer: pki.int2 })
    responder.setIndex([], [leaf])
    // The device's path may end at either registered CA (root, or int2 itself): both name the responder.
    const from = b.logs.length
    for (const [name, ca] of [['root', pki.root], ['int2', pki.int2]] as const) {
      const put = await call(a, 'PUT', `/certificates/${name}`, { certificate: ca.pem, ocsp: { responders: [responder.url] } })
      assert.equal(put.status, 200, JSON.stringify(put.body))
      assert.equal(put.body.isVerified, true)
    }
    // B heard both changes (its OCSP settings reload on them).
    await b.waitForLog((l) => b.logs.indexOf(l) >= from && l.event === 'registry_change' && (l as { change?: { name?: string } }).change?.name === 'int2')
    assert.deepEqual((await b.gw.registry.getCa('int2'))?.settings.ocsp, { responders: [responder.url], policy: 'closed' })

    // Once, not retried: the revoked answer may close it before CONNACK.
    const c = await connectDevice({ port: b.gw.device.port, serverCa: b.serverCa, leaf, chain: [pki.int2, pki.int1] }).catch(() => undefined)
    if (c !== undefined) await closed(c, 5000)
    const line = await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'pg-ocsp')
    assert.equal(line.reason, 'cert_revoked')
    assert.match(line.detail ?? '', /says OCSP responder/)
    await assert.rejects(connectDevice({ port: b.gw.device.port, serverCa: b.serverCa, leaf, chain: [pki.int2, pki.int1] }))
    const refused = await b.waitForLog((l) => l.event === 'refused' && l.deviceId === 'pg-ocsp')
    assert.equal(refused.reason, 'cert_revoked')
    assert.ok(responder.askedAbout(leaf) >= 1)
  } finally {
    await responder.close()
  }
})
